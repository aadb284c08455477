// How the pages write a time: 2026-12-06 20:51 (the phone's own time zone).
function formatTime(iso) {
  const d = new Date(iso);
  if (isNaN(d.getTime())) return iso || '';
  const p = (n) => (n < 10 ? '0' + n : '' + n);
  return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + ' ' + p(d.getHours()) + ':' + p(d.getMinutes());
}

module.exports = { formatTime };
