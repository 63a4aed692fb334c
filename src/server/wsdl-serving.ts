/**
 * Serves the contract at ?wsdl and its schemas at ?xsd=NAME. The soap:address is rewritten
 * to where the client reached us (or server.publicUrl), and every schemaLocation (in the WSDL
 * and inside the schemas, including the standards' absolute URLs such as
 * http://docs.oasis-open.org/wsrf/bf-2.xsd) to our ?xsd= URL: generated clients resolve the
 * whole contract through the proxy, with no other network access. The stored files stay as
 * published; only the served copies are rewritten.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Contract } from '../soap/wsdl';

export interface WsdlDocuments {
  wsdl(endpointUrl: string): string;
  xsd(name: string, endpointUrl: string): string | undefined;
}

const LOCATION = /schemaLocation\s*=\s*"([^"]*)"/g;
const ENDPOINT = '__ENDPOINT__';

/** Where an import of `loc` written in `from` is stored: absolute URLs map to a copy beside it. */
function storedPath(from: string, loc: string): string {
  if (!/^[a-z][a-z0-9+.-]*:/i.test(loc)) return resolve(dirname(from), loc);
  const copy = join(dirname(from), basename(new URL(loc).pathname));
  if (!existsSync(copy)) {
    throw new Error(`${from} imports ${loc}, and no copy of it is stored beside it (${copy})`);
  }
  return copy;
}

/** Every schema reachable from the WSDL's imports, by its served name (the file name). */
function reachableSchemas(contract: Contract): Map<string, { path: string; imports: Map<string, string> }> {
  const found = new Map<string, { path: string; imports: Map<string, string> }>();
  const queue = [...contract.schemaFiles.values()];
  while (queue.length > 0) {
    const path = queue.shift()!;
    const name = basename(path);
    const seen = found.get(name);
    if (seen) {
      if (seen.path !== path)
        throw new Error(`two schemas are both served as ${name}: ${seen.path}, ${path}`);
      continue;
    }
    const imports = new Map<string, string>();
    for (const m of readFileSync(path, 'utf8').matchAll(LOCATION)) {
      const target = storedPath(path, m[1]!);
      imports.set(m[1]!, basename(target));
      queue.push(target);
    }
    found.set(name, { path, imports });
  }
  return found;
}

export function wsdlDocuments(contract: Contract): WsdlDocuments {
  let wsdlText = readFileSync(contract.wsdlPath, 'utf8');
  for (const [loc, abs] of contract.schemaFiles) {
    wsdlText = wsdlText
      .split(`schemaLocation="${loc}"`)
      .join(`schemaLocation="${ENDPOINT}?xsd=${basename(abs)}"`);
  }
  // Port addresses keep their path below the service (…/sessions for the session resources).
  wsdlText = wsdlText.replace(
    /(<soap(?:12)?:address\s+location=)"(?:http:\/\/localhost:8080\/symphony)?([^"]*)"/g,
    (_whole, lead: string, rest: string) => `${lead}"${ENDPOINT}${rest.startsWith('/') ? rest : ''}"`,
  );
  const xsds = new Map<string, string>();
  for (const [name, { path, imports }] of reachableSchemas(contract)) {
    const text = readFileSync(path, 'utf8').replace(
      LOCATION,
      (_whole, loc: string) => `schemaLocation="${ENDPOINT}?xsd=${imports.get(loc) ?? basename(loc)}"`,
    );
    xsds.set(name, text);
  }
  return {
    wsdl: (endpointUrl) => wsdlText.split(ENDPOINT).join(endpointUrl),
    xsd: (name, endpointUrl) => xsds.get(name)?.split(ENDPOINT).join(endpointUrl),
  };
}
