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
