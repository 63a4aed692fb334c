/**
 * The proxy's topic set (WS-Topics 1.3) and the two topic-expression dialects it accepts.
 *
 * Topics live in our own namespace. A Simple expression names a root topic and matches its
 * children too; a Concrete one names exactly one topic, a root or `Root/Child`. A topic is a
 * QName written as element content, so its prefix is resolved where it was written.
 */
import { GatewayError } from '../errors/catalogue';
import { SYM } from '../soap/ws-namespaces';
import { lookupPrefix, textOf, type XmlElement } from '../soap/xml';
import type { TopicFilter } from '../store/notification-store';

export const DIALECT_SIMPLE = 'http://docs.oasis-open.org/wsn/t-1/TopicExpression/Simple';
export const DIALECT_CONCRETE = 'http://docs.oasis-open.org/wsn/t-1/TopicExpression/Concrete';
export const DIALECT_FULL = 'http://docs.oasis-open.org/wsn/t-1/TopicExpression/Full';

export type ProducerKind = 'session' | 'connection';

interface TopicSpec {
  /** Producers that publish it. */
  kinds: readonly ProducerKind[];
  children: readonly string[];
  description: string;
}

export const TOPICS: Readonly<Record<string, TopicSpec>> = {
  TaskOutputAvailable: {
    kinds: ['session'],
    children: [],
    description: 'a task finished and its output was collected from the grid',
  },
  TaskStateChanged: {
    kinds: ['session'],
    children: ['Done', 'Failed'],
    description: 'a task reached a final state, as the proxy observed it',
  },
  SessionStateChanged: {
    kinds: ['session', 'connection'],
    children: ['Open', 'Detached', 'Closed'],
    description: 'a session was opened again, detached or closed through the proxy',
  },
  ResourceTerminated: {
    kinds: ['session', 'connection'],
    children: [],
    description: 'the producer ended (destroyed, closed, expired or gone from the grid)',
  },
};

/** Whether any filter selects a topic of the task family (the session's outputs must then be watched). */
export function wantsTaskEvents(filters: readonly TopicFilter[]): boolean {
  if (filters.length === 0) return true;
  return filters.some((f) => {
    const root = f.path.split('/')[0]!;
    return root === 'TaskOutputAvailable' || root === 'TaskStateChanged';
  });
}

/** Whether a published topic matches one filter (the store applies the same rule). */
export function topicMatches(filter: TopicFilter, topic: string): boolean {
  if (filter.exact) return topic === filter.path;
  return topic === filter.path || topic.startsWith(filter.path + '/');
}

/** The dialect a published topic is written in: Concrete once it names a child. */
export function dialectOf(topic: string): string {
  return topic.includes('/') ? DIALECT_CONCRETE : DIALECT_SIMPLE;
}

const NCNAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

function invalidExpression(message: string): GatewayError {
  return new GatewayError('SSP_INVALID_TOPIC_EXPRESSION', message);
}

/** One step of a topic path: `prefix:Name` (resolved where written) or, below the root, `Name`. */
function step(el: XmlElement, text: string, root: boolean): { ns: string | undefined; local: string } {
  const colon = text.indexOf(':');
  if (colon < 0) {
    if (!NCNAME.test(text)) throw invalidExpression(`'${clip(text)}' is not a topic name`);
    // A root without a prefix is in the default namespace in scope; a child inherits its root's.
    return { ns: root ? (lookupPrefix(el, '') ?? '') : undefined, local: text };
  }
  const prefix = text.slice(0, colon);
  const local = text.slice(colon + 1);
  if (!NCNAME.test(prefix) || !NCNAME.test(local)) throw invalidExpression(`'${clip(text)}' is not a QName`);
  const ns = lookupPrefix(el, prefix);
  if (ns === undefined) {
    throw invalidExpression(
      `the prefix '${prefix}' of '${clip(text)}' is not declared in scope; declare xmlns:${prefix}="${SYM}" on the TopicExpression`,
    );
  }
  return { ns, local };
}

function clip(s: string): string {
  return s.length > 60 ? s.slice(0, 60) + '…' : s;
}

/**
 * A wsnt:TopicExpression as a filter over our topic set. Unknown dialects and topics get the
 * standard's faults.
 */
export function readTopicExpression(el: XmlElement): TopicFilter {
  const dialect = el.attrs.find((a) => a.local === 'Dialect' && a.uri === '')?.value.trim();
  if (dialect === undefined) throw invalidExpression('a TopicExpression needs a Dialect attribute');
  if (dialect !== DIALECT_SIMPLE && dialect !== DIALECT_CONCRETE) {
    throw new GatewayError(
      'SSP_TOPIC_DIALECT_UNKNOWN',
      `the topic dialect '${clip(dialect)}' is not offered; use ${DIALECT_SIMPLE} or ${DIALECT_CONCRETE}`,
    );
  }
  if (el.children.some((c) => typeof c !== 'string'))
    throw invalidExpression('a TopicExpression of these dialects is text, not elements');
  const text = textOf(el).trim();
  if (text === '') throw invalidExpression('the TopicExpression is empty');
  const parts = text.split('/');
  if (dialect === DIALECT_SIMPLE && parts.length > 1) {
    throw invalidExpression(
      `'${clip(text)}' names a child topic, which the Simple dialect cannot; use the Concrete dialect`,
    );
  }
  const root = step(el, parts[0]!, true);
  const path: string[] = [root.local];
  for (const p of parts.slice(1)) {
    const s = step(el, p, false);
    if (s.ns !== undefined && s.ns !== root.ns)
      throw invalidExpression(`'${clip(p)}' is not in the namespace of its root topic`);
    path.push(s.local);
  }
  const spec = root.ns === SYM ? TOPICS[root.local] : undefined;
  const known = spec && (path.length === 1 || (path.length === 2 && spec.children.includes(path[1]!)));
  if (!known) {
    throw new GatewayError(
      'SSP_TOPIC_NOT_SUPPORTED',
      `'${clip(text)}' is not a topic of this proxy; the topics are ${topicList()} in ${SYM}`,
    );
  }
  return { path: path.join('/'), exact: dialect === DIALECT_CONCRETE };
}

/** A topic this kind of producer never publishes is refused, rather than accepted and never delivered. */
export function checkTopicFor(filter: TopicFilter, kind: ProducerKind): void {
  const root = filter.path.split('/')[0]!;
  if (!TOPICS[root]?.kinds.includes(kind)) {
    throw new GatewayError(
      'SSP_TOPIC_NOT_SUPPORTED',
      `a ${kind} does not publish ${root}; its topics are ${topicList(kind)}`,
    );
  }
}

function topicList(kind?: ProducerKind): string {
  return Object.entries(TOPICS)
    .filter(([, t]) => kind === undefined || t.kinds.includes(kind))
    .map(([name, t]) => (t.children.length > 0 ? `${name} (/${t.children.join(', /')})` : name))
    .join(', ');
}
