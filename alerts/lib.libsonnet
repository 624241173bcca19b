// Helpers shared by the mixin (rules, alerts, dashboard). No thresholds here: see config.libsonnet.
{
  // "1h30m" -> 5400. Units: s m h d w (Prometheus duration syntax, no ms).
  seconds(d)::
    local units = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
    local isDigit(c) = std.length(std.findSubstr(c, '0123456789')) > 0;
    local step(acc, c) =
      if isDigit(c) then acc { num: acc.num + c }
      else if std.objectHas(units, c) && acc.num != '' then
        { total: acc.total + std.parseInt(acc.num) * units[c], num: '' }
      else error 'invalid duration "%s" (use e.g. 90s, 5m, 1h30m)' % d;
    local r = std.foldl(step, std.stringChars(d), { total: 0, num: '' });
    if d == '' || r.num != '' then error 'invalid duration "%s"' % d else r.total,

  // Matchers joined into a selector body, skipping empty parts.
  matchers(parts):: std.join(', ', [p for p in parts if p != '']),

  // Deep merge of a user override over the defaults (objects merge, everything else replaces).
  merge(defaults, overrides):: std.mergePatch(defaults, overrides),
}
