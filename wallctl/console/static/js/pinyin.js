// Pinyin initials for searching Chinese names ("南浔区指挥中心" -> "nxqzhzx") without
// shipping a character table: the browser's ICU collates zh-CN in pinyin order, so a
// character's initial is the last bucket whose first character sorts before it. The
// bucket heads are the first characters of each initial in that order.

const HEADS = "阿八嚓哒妸发旮哈讥咔垃痳拏噢妑七呥扨它穵夕丫帀";
const LETTERS = "abcdefghjklmnopqrstwxyz";
let collator = null;
const cache = new Map();

function isHan(ch) {
  const c = ch.codePointAt(0);
  return (c >= 0x4e00 && c <= 0x9fff) || (c >= 0x3400 && c <= 0x4dbf);
}

function initialOf(ch) {
  if (!isHan(ch)) return ch.toLowerCase();
  let hit = cache.get(ch);
  if (hit !== undefined) return hit;
  collator = collator || new Intl.Collator("zh-Hans-CN-u-co-pinyin", { sensitivity: "base" });
  hit = "";
  for (let i = HEADS.length - 1; i >= 0; i--) {
    if (collator.compare(HEADS[i], ch) <= 0) {
      hit = LETTERS[i];
      break;
    }
  }
  cache.set(ch, hit);
  return hit;
}

export function initials(text) {
  let out = "";
  for (const ch of String(text)) {
    if (/\s/.test(ch)) continue;
    out += initialOf(ch);
  }
  return out;
}

// Does `name` match the typed `query`: as a substring (any script), or by pinyin
// initials ("nxq" finds 南浔区...).
export function matches(name, query) {
  const q = String(query).trim().toLowerCase();
  if (!q) return true;
  const n = String(name).toLowerCase();
  if (n.includes(q)) return true;
  return /^[a-z0-9]+$/.test(q) && initials(name).includes(q);
}
