// The schedule form says how far off the typed time is ("in 2 days 3 hours"), read on the
// clock of the zone typed beside it, a city or a zone's name as the server takes either, else
// the publication's (never the browser's). The server checks the time again
// and refuses a past or skipped one with the reason; this is only a guide while typing.
(function () {
  "use strict";

  function offsetMinutes(instant, zone) {
    // The zone's offset from UTC at `instant`, from what Intl prints for that instant there.
    var parts = {};
    new Intl.DateTimeFormat("en-US", {
      timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit"
    }).formatToParts(new Date(instant)).forEach(function (p) { parts[p.type] = p.value; });
    var wall = Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour, +parts.minute, +parts.second);
    return Math.round((wall - instant) / 60000);
  }

  function instantOf(value, zone) {
    var m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(value);
    if (!m) { return null; }
    var wall = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]);
    var guess = wall - offsetMinutes(wall, zone) * 60000;
    return wall - offsetMinutes(guess, zone) * 60000;
  }

  function inWords(ms) {
    var minutes = Math.floor(ms / 60000);
    if (minutes < 1) { return "in under a minute"; }
    var days = Math.floor(minutes / 1440), hours = Math.floor((minutes % 1440) / 60), mins = minutes % 60;
    var parts = days ? [[days, "day"], [hours, "hour"]] : [[hours, "hour"], [mins, "minute"]];
    return "in " + parts.filter(function (p) { return p[0]; }).map(function (p) {
      return p[0] + " " + p[1] + (p[0] === 1 ? "" : "s");
    }).join(" ");
  }

  var REGIONS = ["Africa", "America", "Antarctica", "Arctic", "Asia", "Atlantic", "Australia", "Europe", "Indian",
    "Pacific"];
  var zoneList = null;

  function knownZones() {
    if (zoneList === null) {
      zoneList = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
    }
    return zoneList;
  }

  // The zone the server will read, as services.starter.zone_for does: a name in any case
  // ("europe/paris"), a city ("New York"), or the start of one when only one zone fits
  // ("new yo"). Null while none fits, or several do: the server then says which.
  function zoneFor(typed) {
    var text = typed.split(/\s+/).filter(Boolean).join(" ");
    if (!text) { return null; }
    try {
      return new Intl.DateTimeFormat("en-US", { timeZone: text }).resolvedOptions().timeZone;
    } catch (e) { /* not a zone's name: perhaps a city */ }
    var key = text.replace(/ /g, "_").toLowerCase();
    var city = key.split("/").pop();
    var region = key.indexOf("/") >= 0 ? key.split("/")[0] + "/" : "";
    var cities = knownZones().filter(function (z) { return REGIONS.indexOf(z.split("/")[0]) >= 0; });
    var exact = cities.filter(function (z) { return z.split("/").pop().toLowerCase() === city; });
    var found = exact.length ? exact : cities.filter(function (z) {
      return z.split("/").pop().toLowerCase().indexOf(city) === 0;
    });
    if (region) {
      var inRegion = found.filter(function (z) { return z.toLowerCase().indexOf(region) === 0; });
      if (inRegion.length) { found = inRegion; }
    }
    return found.length === 1 ? found[0] : null;
  }

  function zoneLabel(zone) {
    // As services.clock.zone_label shows a zone: "America/New York", "UTC".
    return zone.replace(/^Etc\//, "").replace(/_/g, " ");
  }

  function update(input, out, zoneInput) {
    var typed = zoneInput ? zoneInput.value.trim() : "";
    var zone = typed ? zoneFor(typed) : input.getAttribute("data-zone");
    if (zone === null) {
      out.textContent = input.value ? "Type a city, such as London, or a zone such as Europe/Paris, to see how far off that is." : "";
      return;
    }
    var instant = null;
    try { instant = instantOf(input.value, zone); } catch (e) { instant = null; }
    if (instant === null) { out.textContent = ""; return; }
    var ahead = instant - Date.now();
    var label = zoneLabel(zone);
    out.textContent = ahead > 0 ? inWords(ahead) + " (" + label + ")" : "That time has passed in " + label + ".";
  }

  document.addEventListener("DOMContentLoaded", function () {
    var input = document.getElementById("at");
    var out = document.getElementById("at-words");
    if (!input || !out) { return; }
    var zoneInput = document.getElementById("timezone");
    var go = function () { update(input, out, zoneInput); };
    input.addEventListener("input", go);
    if (zoneInput) { zoneInput.addEventListener("input", go); }
    go();
  });
})();
