// ferry's dashboard: small progressive enhancements; every page works without this script.
"use strict";

// <input data-filter="TABLE_ID">: hide the table's rows that do not contain the text typed.
function bindFilters() {
  for (const input of document.querySelectorAll("input[data-filter]")) {
    const table = document.getElementById(input.dataset.filter);
    if (!table) continue;
    input.addEventListener("input", () => {
      const wanted = input.value.trim().toLowerCase();
      for (const row of table.tBodies[0].rows) {
        row.hidden = wanted !== "" && !row.textContent.toLowerCase().includes(wanted);
      }
    });
  }
}

// <section data-refresh="URL" data-every="SECONDS">: replace its content with the HTML that
// URL answers, every few seconds (live numbers).
function bindRefreshes() {
  for (const section of document.querySelectorAll("[data-refresh]")) {
    const every = 1000 * Number(section.dataset.every || 3);
    const refresh = async () => {
      try {
        const response = await fetch(section.dataset.refresh, { cache: "no-store" });
        if (response.ok) section.innerHTML = await response.text();
      } catch (error) {
        /* the server is restarting: keep the last numbers */
      }
    };
    setInterval(refresh, every);
  }
}

document.addEventListener("DOMContentLoaded", () => { bindFilters(); bindRefreshes(); });
