/**
 * Where a subscriber may make the proxy send: a ConsumerReference is an address chosen by the
 * client, so without a check it would let a client make the proxy call internal hosts (SSRF).
 *
 * The operator lists, per consumer, host names (`consumer.bank.example`, `*.bank.example`) and
 * addresses or networks (`10.1.2.3`, `10.0.0.0/8`, `::1`). A name is checked when the client
 * subscribes, and again at every new connection against what it resolves to: loopback,
 * link-local (cloud metadata), unspecified and multicast addresses are refused unless an address
 * rule names them, and the connection goes to the address that was checked, so a DNS answer that
 * changes in between (rebinding) gains nothing.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { GatewayError } from '../errors/catalogue';

export interface DestinationRule {
  /** A consumer id, or `*` for every consumer. */
  consumer: string;
  /** Host names (`*.suffix` allowed), IP addresses and CIDR networks. */
  hosts: string[];
  /** Plain http as well as https (test consumers, networks encrypted by other means). */
  allowHttp: boolean;
}

interface CompiledRule {
  names: string[];
  suffixes: string[];
  addresses: BlockList;
  allowHttp: boolean;
}

/** Never reached through a name alone: an address rule has to name them. */
const SPECIAL = new BlockList();
SPECIAL.addSubnet('0.0.0.0', 8, 'ipv4');
SPECIAL.addSubnet('127.0.0.0', 8, 'ipv4');
SPECIAL.addSubnet('169.254.0.0', 16, 'ipv4');
SPECIAL.addSubnet('224.0.0.0', 4, 'ipv4');
SPECIAL.addSubnet('255.255.255.255', 32, 'ipv4');
SPECIAL.addAddress('::', 'ipv6');
SPECIAL.addAddress('::1', 'ipv6');
SPECIAL.addSubnet('fe80::', 10, 'ipv6');
SPECIAL.addSubnet('ff00::', 8, 'ipv6');

function refused(message: string): GatewayError {
  return new GatewayError('SSP_CONSUMER_REFUSED', message);
}

/** An IPv4-mapped IPv6 address (::ffff:127.0.0.1) is checked as the IPv4 address it is. */
function normalise(address: string): { address: string; type: 'ipv4' | 'ipv6' } {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return { address: mapped[1]!, type: 'ipv4' };
  return { address, type: isIP(address) === 6 ? 'ipv6' : 'ipv4' };
}

function compile(rule: DestinationRule): CompiledRule {
  const out: CompiledRule = {
    names: [],
    suffixes: [],
    addresses: new BlockList(),
    allowHttp: rule.allowHttp,
  };
  for (const raw of rule.hosts) {
    const h = raw.trim().toLowerCase();
    const cidr = /^(.+)\/(\d{1,3})$/.exec(h);
    if (cidr && isIP(cidr[1]!)) {
      const type = isIP(cidr[1]!) === 6 ? 'ipv6' : 'ipv4';
      out.addresses.addSubnet(cidr[1]!, Number(cidr[2]), type);
    } else if (isIP(h.replace(/^\[|\]$/g, ''))) {
      const a = normalise(h.replace(/^\[|\]$/g, ''));
      out.addresses.addAddress(a.address, a.type);
    } else if (h.startsWith('*.')) {
      out.suffixes.push(h.slice(1));
    } else {
      out.names.push(h);
    }
  }
  return out;
}

export class Destinations {
  private readonly rules: Map<string, CompiledRule[]> = new Map();

  constructor(rules: readonly DestinationRule[]) {
    for (const r of rules) {
      const list = this.rules.get(r.consumer) ?? [];
      list.push(compile(r));
      this.rules.set(r.consumer, list);
    }
  }

  private rulesOf(consumer: string): CompiledRule[] {
    return [...(this.rules.get(consumer) ?? []), ...(this.rules.get('*') ?? [])];
  }

  private addressAllowed(rules: CompiledRule[], address: string): boolean {
    const a = normalise(address);
    if (rules.some((r) => r.addresses.check(a.address, a.type))) return true;
    return false;
  }

  /** Checks a ConsumerReference address when the client subscribes; throws SSP_CONSUMER_REFUSED. */
  check(consumer: string, address: string): URL {
    let url: URL;
    try {
      url = new URL(address);
    } catch {
      throw refused(`the ConsumerReference address '${address.slice(0, 100)}' is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw refused(`a consumer must be reached over http or https, not ${url.protocol}`);
    if (url.username !== '' || url.password !== '')
      throw refused('a ConsumerReference address may not carry credentials');
    const rules = this.rulesOf(consumer);
    const host = url.hostname.toLowerCase().replace(/^\[|\]$/g, '');
    const matching = isIP(host)
      ? rules.filter((r) => this.addressAllowed([r], host))
      : rules.filter((r) => r.names.includes(host) || r.suffixes.some((s) => host.endsWith(s)));
    if (matching.length === 0) {
      throw refused(
        rules.length === 0
          ? 'this proxy sends notifications to no address for you (notifications.destinations); use a pull point'
          : `the host ${host} is not among the destinations allowed for you`,
      );
    }
    if (url.protocol === 'http:' && !matching.some((r) => r.allowHttp))
      throw refused(`notifications to ${host} must use https`);
    return url;
  }

  /**
   * A `lookup` for node:http that resolves the consumer's host and refuses any answer a
   * subscriber must not reach, so the socket connects only to an address that was checked.
   */
  lookupFor(consumer: string): typeof dnsLookup {
    const rules = this.rulesOf(consumer);
    const allowed = (a: string): boolean => !isSpecial(a) || this.addressAllowed(rules, a);
    const lookup = (
      hostname: string,
      options: { all?: boolean; family?: number },
      callback: (
        err: NodeJS.ErrnoException | null,
        address: string | LookupAddress[],
        family?: number,
      ) => void,
    ): void => {
      dnsLookup(hostname, { all: true, family: options.family ?? 0 }, (err, addresses) => {
        if (err) return callback(err, '', 0);
        const bad = addresses.find((a) => !allowed(a.address));
        if (bad) {
          const e: NodeJS.ErrnoException = new Error(
            `${hostname} resolves to ${bad.address}, which notifications may not reach (list it in notifications.destinations to allow it)`,
          );
          e.code = 'ESSPDESTINATION';
          return callback(e, '', 0);
        }
        if (options.all) return callback(null, addresses);
        const first = addresses[0]!;
        callback(null, first.address, first.family);
      });
    };
    return lookup as unknown as typeof dnsLookup;
  }
}

export function isSpecial(address: string): boolean {
  const a = normalise(address);
  return SPECIAL.check(a.address, a.type);
}
