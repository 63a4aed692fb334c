/**
 * Distinguished names in the two spellings we meet: Node's X509Certificate (one RDN per line,
 * most significant first) and the RFC 4514 / 2253 strings clients and operators write
 * ("CN=client,O=Bank,C=GB", least significant first).
 */

/** Node's multi-line subject/issuer as RFC 4514: "CN=dev-client,OU=cloud,O=Bank". */
export function rfc4514FromNode(multiLine: string): string {
  return multiLine.split('\n').filter(Boolean).reverse().join(',');
}

/** Splits an RFC 4514 string on RDN separators, honouring backslash escapes. */
function rdns(dn: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < dn.length; i++) {
    const ch = dn[i]!;
    if (ch === '\\' && i + 1 < dn.length) {
      cur += ch + dn[++i];
    } else if (ch === ',' || ch === ';') {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.map((r) => r.trim()).filter(Boolean);
}

const TYPE_ALIASES: Record<string, string> = {
  EMAILADDRESS: 'E',
  EMAIL: 'E',
  S: 'ST',
  '2.5.4.3': 'CN',
  '2.5.4.6': 'C',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
};

/**
 * A comparison key for a DN: attribute types upper-cased and aliased, values compared without
 * case (X.520 caseIgnoreMatch), RDN order ignored because clients disagree about it.
 */
export function dnKey(dn: string): string {
  return rdns(dn)
    .map((r) => {
      const eq = r.indexOf('=');
      if (eq < 0) return r.toLowerCase();
      const type = r.slice(0, eq).trim().toUpperCase();
      return `${TYPE_ALIASES[type] ?? type}=${r
        .slice(eq + 1)
        .trim()
        .toLowerCase()}`;
    })
    .sort()
    .join(',');
}

/** OpenSSL's short names where clients and Node spell the type differently. */
const OPENSSL_NAMES: Record<string, string> = {
  E: 'emailAddress',
  EMAIL: 'emailAddress',
  EMAILADDRESS: 'emailAddress',
  '1.2.840.113549.1.9.1': 'emailAddress',
  '0.9.2342.19200300.100.1.1': 'UID',
  '0.9.2342.19200300.100.1.25': 'DC',
  SERIALNUMBER: 'serialNumber',
  '2.5.4.5': 'serialNumber',
};
/** Short names OpenSSL writes in upper case, whatever case the caller used. */
const UPPER_NAMES = new Set(['C', 'ST', 'L', 'O', 'OU', 'CN', 'DC', 'UID', 'SN', 'GN']);

function opensslType(raw: string): string {
  const upper = raw.toUpperCase();
  const alias = TYPE_ALIASES[upper] ?? upper;
  if (OPENSSL_NAMES[upper] !== undefined) return OPENSSL_NAMES[upper];
  if (UPPER_NAMES.has(alias)) return alias;
  return raw;
}

/** Splits on an unescaped separator character. */
function splitUnescaped(s: string, separators: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (ch === '\\' && i + 1 < s.length) {
      cur += ch + s[++i];
    } else if (separators.includes(ch)) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

/** Trims unescaped spaces at both ends ("a\ " keeps its escaped trailing space). */
function trimDnPart(s: string): string {
  let t = s.trimStart();
  while (t.endsWith(' ') && !t.endsWith('\\ ')) t = t.slice(0, -1);
  return t;
}

/** RFC 4514 value unescaping: `\,` is a comma, `\C3\AB` are two UTF-8 bytes. */
function unescapeValue(v: string): Buffer {
  const bytes: number[] = [];
  const text = v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '\\' && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 1, i + 3))) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (ch === '\\' && i + 1 < text.length) {
      bytes.push(...Buffer.from(text[++i]!, 'utf8'));
    } else bytes.push(...Buffer.from(ch, 'utf8'));
  }
  return Buffer.from(bytes);
}

/** A value as OpenSSL's compat printer writes it: separators escaped, other bytes as `\xHH`. */
function opensslValue(value: Buffer): string {
  let out = '';
  for (const b of value) {
    if (b < 0x20 || b > 0x7e) out += `\\x${b.toString(16).toUpperCase().padStart(2, '0')}`;
    else if (b === 0x2f || b === 0x2b) out += `\\${String.fromCharCode(b)}`;
    else out += String.fromCharCode(b);
  }
  return out;
}

function opensslAva(ava: string): string {
  const eq = ava.indexOf('=');
  if (eq < 0) throw new Error(`'${ava}' is not a TYPE=value pair; write the DN as CN=…,O=…,C=…`);
  const type = opensslType(ava.slice(0, eq).trim());
  return `${type}=${opensslValue(unescapeValue(trimDnPart(ava.slice(eq + 1))))}`;
}

/**
 * A DN in OpenSSL's legacy slash form (`/C=UK/O=Bank/CN=host`, most significant first), which is
 * what APEL/SSM receivers compare against their lists of valid DNs. Accepts an RFC 4514 string
 * (least significant first) or Node's multi-line X509Certificate subject (most significant first).
 * Matches `openssl x509 -subject -nameopt compat`: `/` and `+` inside values are backslash-escaped,
 * bytes outside printable ASCII are written as `\xHH` of their UTF-8 encoding.
 */
export function slashDn(rfc4514OrNode: string): string {
  const multiLine = rfc4514OrNode.includes('\n');
  const parts = multiLine ? rfc4514OrNode.split('\n') : splitUnescaped(rfc4514OrNode, ',;');
  const rdnList = parts.map(trimDnPart).filter(Boolean);
  if (!multiLine) rdnList.reverse();
  return rdnList
    .map((rdn) => `/${splitUnescaped(rdn, '+').map(trimDnPart).map(opensslAva).join('+')}`)
    .join('');
}
