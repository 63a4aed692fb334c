/** The proxy's contract: the WSDL, with the codecs of the standards' messages it uses. */
import type { TaskOutputItem } from '../pipeline/operation';
import { wsrfCodecs } from '../resources/codecs';
import { enumerationCodecs } from '../resources/enumeration-codecs';
import { notificationCodecs } from '../notifications/codecs';
import type { ElementCodec } from '../soap/schema';
import { defaultWsdlPath, loadContract, type Contract } from '../soap/wsdl';

export interface ProxyContract extends Contract {
  /** Writes one task output as the sym:Output element (the items of an enumeration). */
  encodeOutput(item: TaskOutputItem): string;
}

export function loadProxyContract(root: string): ProxyContract {
  // Enumeration items are our own element, written by our schema's codec, known once it is loaded.
  const late: { output?: ElementCodec } = {};
  const encodeOutput = (item: TaskOutputItem): string => late.output!.encode(item);
  const contract = loadContract(
    defaultWsdlPath(root),
    new Map([...wsrfCodecs(), ...enumerationCodecs(encodeOutput), ...notificationCodecs()]),
  );
  late.output = contract.schema.codec('Output');
  return { ...contract, encodeOutput };
}
