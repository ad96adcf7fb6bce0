package ferry.examples;

import ai.onnxruntime.OnnxJavaType;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxValue;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.lang.reflect.Array;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.DoubleBuffer;
import java.nio.FloatBuffer;
import java.nio.IntBuffer;
import java.nio.LongBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Runs a ferry export bundle's golden cases with ONNX Runtime for Java and compares every output.
 *
 * <p>{@code CheckBundle BUNDLE_DIR} exits 0 when every case matches, 1 when one differs (each
 * difference is printed), 2 when the bundle cannot be read. Floating outputs may differ by {@code
 * atol + rtol * |want|} (golden.json's tolerance); every other dtype must be equal.
 */
public final class CheckBundle {
  private static final int SHOWN_PER_OUTPUT = 5;
  private static final Set<String> FLOATING = Set.of("float16", "float32", "float64");

  private final OrtEnvironment env = OrtEnvironment.getEnvironment();
  private final double rtol;
  private final double atol;

  private CheckBundle(JsonNode tolerance) {
    rtol = tolerance.path("rtol").asDouble();
    atol = tolerance.path("atol").asDouble();
  }

  public static void main(String[] args) {
    if (args.length != 1) {
      System.err.println("usage: CheckBundle BUNDLE_DIR");
      System.exit(2);
    }
    try {
      System.exit(check(Path.of(args[0])));
    } catch (Exception error) {
      System.err.println("error: " + error.getMessage());
      System.exit(2);
    }
  }

  /** Runs every case of the bundle; returns the exit status. */
  static int check(Path bundle) throws Exception {
    ObjectMapper json = new ObjectMapper();
    JsonNode signature = json.readTree(bundle.resolve("signature.json").toFile());
    JsonNode golden = json.readTree(bundle.resolve("golden.json").toFile());
    CheckBundle checker = new CheckBundle(golden.path("tolerance"));
    int passed = 0;
    int total = golden.get("cases").size();
    String model = bundle.resolve("model.onnx").toString();
    try (OrtSession session = checker.env.createSession(model, new OrtSession.SessionOptions())) {
      for (JsonNode goldenCase : golden.get("cases")) {
        List<String> differences = checker.runCase(session, goldenCase);
        differences.forEach(line -> System.out.println("FAIL " + line));
        passed += differences.isEmpty() ? 1 : 0;
      }
    }
    String verdict = passed == total ? "all passed" : (total - passed) + " failed";
    System.out.printf("%s: %d/%d golden cases passed (%s) with onnxruntime (Java)%n",
        signature.path("uri").asText(), passed, total, verdict);
    return passed == total ? 0 : 1;
  }

  /** Runs one golden case; returns its differences (none when it passed). */
  List<String> runCase(OrtSession session, JsonNode goldenCase) {
    String name = goldenCase.get("name").asText();
    Map<String, OnnxTensor> feeds = new LinkedHashMap<>();
    Set<String> wanted = new LinkedHashSet<>();
    goldenCase.get("outputs").fieldNames().forEachRemaining(wanted::add);
    try {
      for (Map.Entry<String, JsonNode> input : goldenCase.get("inputs").properties()) {
        feeds.put(input.getKey(), toTensor(input.getValue()));
      }
      try (OrtSession.Result result = session.run(feeds, wanted)) {
        List<String> differences = new ArrayList<>();
        for (String output : wanted) {
          OnnxValue got = result.get(output).orElse(null);
          differences.addAll(compare(name, output, got, goldenCase.get("outputs").get(output)));
        }
        return differences;
      }
    } catch (OrtException | RuntimeException error) {
      return List.of("case " + name + ": onnxruntime could not run it: " + error.getMessage());
    } finally {
      feeds.values().forEach(OnnxTensor::close);
    }
  }

  /** An OnnxTensor from a golden.json tensor ({dtype, shape, data}). */
  OnnxTensor toTensor(JsonNode tensor) throws OrtException {
    long[] shape = longs(tensor.get("shape"));
    JsonNode data = tensor.get("data");
    int n = data.size();
    switch (tensor.get("dtype").asText()) {
      case "float32": {
        float[] values = new float[n];
        for (int i = 0; i < n; i++) values[i] = (float) data.get(i).asDouble();
        return OnnxTensor.createTensor(env, FloatBuffer.wrap(values), shape);
      }
      case "float64": {
        double[] values = new double[n];
        for (int i = 0; i < n; i++) values[i] = data.get(i).asDouble();
        return OnnxTensor.createTensor(env, DoubleBuffer.wrap(values), shape);
      }
      case "int64":
        return OnnxTensor.createTensor(env, LongBuffer.wrap(longs(data)), shape);
      case "int32": {
        int[] values = new int[n];
        for (int i = 0; i < n; i++) values[i] = data.get(i).asInt();
        return OnnxTensor.createTensor(env, IntBuffer.wrap(values), shape);
      }
      case "int8":
        return byteTensor(data, shape, OnnxJavaType.INT8);
      case "uint8":
        return byteTensor(data, shape, OnnxJavaType.UINT8);
      case "bool":
        return byteTensor(data, shape, OnnxJavaType.BOOL);
      case "string": {
        String[] values = new String[n];
        for (int i = 0; i < n; i++) values[i] = data.get(i).asText();
        return OnnxTensor.createTensor(env, values, shape);
      }
      default:
        throw new IllegalArgumentException(
            "dtype " + tensor.get("dtype").asText() + " is not supported by this checker");
    }
  }

  private OnnxTensor byteTensor(JsonNode data, long[] shape, OnnxJavaType type)
      throws OrtException {
    byte[] values = new byte[data.size()];
    for (int i = 0; i < values.length; i++) {
      JsonNode value = data.get(i);
      values[i] = (byte) (value.isBoolean() ? (value.asBoolean() ? 1 : 0) : value.asInt());
    }
    return OnnxTensor.createTensor(env, ByteBuffer.wrap(values), shape, type);
  }

  /** Differences between one output and its expected tensor, as printable lines. */
  List<String> compare(String caseName, String output, OnnxValue got, JsonNode want)
      throws OrtException {
    String where = "case " + caseName + " output " + output;
    if (!(got instanceof OnnxTensor tensor)) {
      return List.of(where + ": missing from the session's outputs, or not a tensor");
    }
    long[] shape = tensor.getInfo().getShape();
    long[] wantShape = longs(want.get("shape"));
    if (!Arrays.equals(shape, wantShape)) {
      return List.of(where + ": shape " + Arrays.toString(shape) + ", want "
          + Arrays.toString(wantShape));
    }
    List<Object> values = flatten(tensor.getValue());
    String dtype = want.get("dtype").asText();
    JsonNode data = want.get("data");
    List<String> lines = new ArrayList<>();
    int differing = 0;
    for (int i = 0; i < data.size(); i++) {
      if (matches(dtype, values.get(i), data.get(i))) continue;
      differing++;
      if (lines.size() < SHOWN_PER_OUTPUT) {
        lines.add(where + " index " + i + ": got " + values.get(i) + ", want " + data.get(i));
      }
    }
    if (differing > lines.size()) {
      lines.add(where + ": " + (differing - lines.size()) + " more differences");
    }
    return lines;
  }

  /** Whether one value equals the wanted one for {@code dtype} (floating: within tolerance). */
  boolean matches(String dtype, Object got, JsonNode want) {
    if (FLOATING.contains(dtype)) {
      double expected = want.asDouble();
      return got instanceof Number number
          && Math.abs(number.doubleValue() - expected) <= atol + rtol * Math.abs(expected);
    }
    if (dtype.equals("bool")) return got instanceof Boolean value && value == want.asBoolean();
    if (dtype.equals("string")) return got instanceof String value && value.equals(want.asText());
    if (dtype.equals("uint8")) {
      return got instanceof Byte value && Byte.toUnsignedInt(value) == want.asInt();
    }
    return got instanceof Number number && want.isIntegralNumber()
        && BigInteger.valueOf(number.longValue()).equals(want.bigIntegerValue());
  }

  /** A tensor's value (a scalar or nested Java arrays) as a flat row-major list. */
  static List<Object> flatten(Object value) {
    List<Object> flat = new ArrayList<>();
    if (value == null || !value.getClass().isArray()) {
      flat.add(value);
      return flat;
    }
    for (int i = 0; i < Array.getLength(value); i++) flat.addAll(flatten(Array.get(value, i)));
    return flat;
  }

  static long[] longs(JsonNode array) {
    long[] values = new long[array.size()];
    for (int i = 0; i < values.length; i++) values[i] = array.get(i).asLong();
    return values;
  }
}
