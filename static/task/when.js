/*
 * When the next visit opens and closes, in the participant's language and the browser's
 * time zone: "Your next session opens in 4 hours, from 14:05 today until 02:05 tomorrow."
 *
 * The server decides every status (trials/visits.py) and sends the window in UTC; this
 * file only writes it for people. "In 4 hours" and "today" count from the server's clock
 * (its time at page load plus the time elapsed since), because a participant's own clock
 * may be hours off; the hours shown are the browser's zone, which is where they live.
 *
 * Used by the task page's completion screen (BeliefWhen.describe) and, on its own, by the
 * return link's pages (#visit-config). No inline script: the page runs under a strict CSP.
 */
(function () {
  "use strict";

  function fill(text, values) {
    return String(text).replace(/\{(\w+)\}/g, function (all, name) {
      return Object.prototype.hasOwnProperty.call(values, name) ? values[name] : all;
    });
  }

  /** The browser's own locale when it is in the participant's language (en-GB: 14:05). */
  function localeFor(language) {
    var nav = (navigator.languages && navigator.languages[0]) || navigator.language || "";
    return nav.toLowerCase().split("-")[0] === String(language).toLowerCase() ? nav : language;
  }

  /** A clock that reads the server's time: its time at load plus the time elapsed since. */
  function serverClock(serverNowIso) {
    var offset = Date.parse(serverNowIso) - Date.now();
    if (!isFinite(offset)) offset = 0;
    return function () {
      return new Date(Date.now() + offset);
    };
  }

  /** Calendar days from a to b in the browser's zone (DST days count as one). */
  function dayDiff(a, b) {
    var da = Date.UTC(a.getFullYear(), a.getMonth(), a.getDate());
    var db = Date.UTC(b.getFullYear(), b.getMonth(), b.getDate());
    return Math.round((db - da) / 86400000);
  }

  function moment(date, now, locale, S) {
    var time = new Intl.DateTimeFormat(locale, { hour: "2-digit", minute: "2-digit" }).format(date);
    var days = dayDiff(now, date);
    if (days >= -1 && days <= 1) {
      var day = new Intl.RelativeTimeFormat(locale, { numeric: "auto" }).format(days, "day");
      return fill(S.moment_day, { time: time, day: day });
    }
    var when = new Intl.DateTimeFormat(locale, { weekday: "long", day: "numeric", month: "long" }).format(date);
    return fill(S.moment_date, { time: time, date: when });
  }

  function relative(ms, locale) {
    var rtf = new Intl.RelativeTimeFormat(locale, { numeric: "always" });
    var minutes = Math.round(ms / 60000);
    if (minutes < 90) return rtf.format(Math.max(1, minutes), "minute");
    var hours = Math.round(ms / 3600000);
    if (hours < 48) return rtf.format(hours, "hour");
    return rtf.format(Math.round(ms / 86400000), "day");
  }

  /**
   * The sentence for a next visit {opens_at, closes_at} (ISO UTC, opens_at null while the
   * staff anchor is unset), and the zone line.
   */
  function describe(visit, options) {
    var S = options.strings || {};
    var locale = localeFor(options.language || "en");
    var now = options.now || new Date();
    var zone = "";
    try {
      zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (e) {
      zone = "";
    }
    var zoneLine = zone ? fill(S.next_zone, { zone: zone }) : "";
    if (!visit || !visit.opens_at) return { sentence: S.next_waiting_anchor, zone: "" };
    var opens = new Date(visit.opens_at);
    var closes = visit.closes_at ? new Date(visit.closes_at) : null;
    var sentence;
    if (opens <= now) {
      sentence = closes ? fill(S.next_open_closes, { closes: moment(closes, now, locale, S) }) : S.next_open;
    } else {
      var values = { relative: relative(opens - now, locale), opens: moment(opens, now, locale, S) };
      if (closes) {
        values.closes = moment(closes, now, locale, S);
        sentence = fill(S.next_opens_closes, values);
      } else {
        sentence = fill(S.next_opens, values);
      }
    }
    return { sentence: sentence, zone: zoneLine };
  }

  window.BeliefWhen = { describe: describe, serverClock: serverClock };

  // The return link's "not open yet" page.
  function returnPage() {
    var node = document.getElementById("visit-config");
    var target = document.getElementById("visit-window");
    if (!node || !target) return;
    var config = JSON.parse(node.textContent);
    var text = describe(config.next_visit, {
      language: config.language,
      strings: config.strings,
      now: serverClock(config.server_now)(),
    });
    target.textContent = text.sentence;
    var zone = document.getElementById("visit-zone");
    if (zone) zone.textContent = text.zone;
    var after = document.getElementById("visit-come-back");
    if (after) after.hidden = false;
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", returnPage);
  } else {
    returnPage();
  }
})();
