/** The proxy's contract: the WSDL, with the codecs of the standards' messages it uses. */
import { wsrfCodecs } from '../resources/codecs';
import { defaultWsdlPath, loadContract, type Contract } from '../soap/wsdl';

export function loadProxyContract(root: string): Contract {
  return loadContract(defaultWsdlPath(root), wsrfCodecs());
}
