/**
 * Serves the contract at ?wsdl and its schema at ?xsd=NAME. The soap:address is rewritten
 * to where the client reached us (or server.publicUrl), and schemaLocation to our ?xsd= URL,
 * so generated clients resolve everything through the proxy itself.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { Contract } from '../soap/wsdl';

export interface WsdlDocuments {
  wsdl(endpointUrl: string): string;
  xsd(name: string): string | undefined;
}

export function wsdlDocuments(contract: Contract): WsdlDocuments {
  let wsdlText = readFileSync(contract.wsdlPath, 'utf8');
  const xsds = new Map<string, string>();
  for (const [loc, abs] of contract.schemaFiles) {
    const name = basename(abs);
    xsds.set(name, readFileSync(abs, 'utf8'));
    wsdlText = wsdlText.split(`schemaLocation="${loc}"`).join(`schemaLocation="__ENDPOINT__?xsd=${name}"`);
  }
  wsdlText = wsdlText.replace(/location="[^"]*"/g, 'location="__ENDPOINT__"');
  return {
    wsdl: (endpointUrl) => wsdlText.split('__ENDPOINT__').join(endpointUrl),
    xsd: (name) => xsds.get(name),
  };
}
