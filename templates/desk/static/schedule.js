// The schedule form says how far off the typed time is ("in 2 days 3 hours"), read on the
// clock of the publication's zone (not the browser's). The server checks the time again
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

  function update(input, out, zoneInput) {
    var zone = (zoneInput && zoneInput.value.trim()) || input.getAttribute("data-zone");
    var instant = null;
    try { instant = instantOf(input.value, zone); } catch (e) { instant = null; }
    if (instant === null) { out.textContent = ""; return; }
    var ahead = instant - Date.now();
    out.textContent = ahead > 0 ? inWords(ahead) + " (" + zone + ")" : "That time has passed in " + zone + ".";
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
