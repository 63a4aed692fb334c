/** A typed face over node-soap's dynamically generated client methods. */
import * as soap from 'soap';

export type SoapClient = soap.Client;

export async function wsdlClient(wsdlUrl: string): Promise<SoapClient> {
  return soap.createClientAsync(wsdlUrl);
}

/** Calls an operation through the generated `<op>Async` method and returns its result object. */
export async function invoke<T = Record<string, unknown>>(
  client: SoapClient,
  op: string,
  args: object,
): Promise<T> {
  const fn = (client as unknown as Record<string, (a: object) => Promise<[T]>>)[`${op}Async`];
  if (typeof fn !== 'function') throw new Error(`the generated client has no operation ${op}`);
  const [result] = await fn.call(client, args);
  return result;
}

/** The typed fault detail carried by a node-soap error, if any. */
export function faultDetail(err: unknown): { element: string; code: string; retryable: string } | undefined {
  const e = err as {
    root?: { Envelope?: { Body?: { Fault?: { detail?: Record<string, Record<string, string>> } } } };
  };
  const detail = e.root?.Envelope?.Body?.Fault?.detail;
  if (!detail) return undefined;
  const element = Object.keys(detail).find((k) => k !== 'attributes');
  if (!element) return undefined;
  const body = detail[element]!;
  return { element, code: body.code!, retryable: body.retryable! };
}
