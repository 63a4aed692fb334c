/**
 * What the proxy publishes and how a Notify is written.
 *
 * NotificationMessageHolderType has no extension point, so the sequence number travels inside
 * our payload (`seq` attribute) and, for the whole Notify, in a signed `sym:Sequence` header. The
 * topic is repeated as the payload's `topic` attribute because some client stacks lose the text
 * of wsnt:Topic (a QName in mixed content).
 */
import { randomUUID } from 'node:crypto';
import type { TaskOutputItem } from '../pipeline/operation';
import { referenceElement } from '../resources/address';
import type { SignedHeader } from '../security/envelope-signer';
import { SYM, WSA, WSNT, WSNT_W } from '../soap/ws-namespaces';
import { escapeAttr, escapeText } from '../soap/xml';
import type { NotificationEvent, QueuedMessage, SubscriptionState } from '../store/notification-store';
import { dialectOf } from './topics';

export const NOTIFY_ACTION = `${WSNT_W}/NotificationConsumer/Notify`;

function payload(local: string, inner: string): string {
  return `<sym:${local} xmlns:sym="${SYM}">${inner}</sym:${local}>`;
}

function el(local: string, value: string | number): string {
  return `<sym:${local}>${escapeText(String(value))}</sym:${local}>`;
}

/**
 * A finished task: its output (sym:Output, as fetchTaskOutput and Pull write it) when `inline`,
 * otherwise a reference saying how to get it (it waits in the session for fetchTaskOutput).
 */
export function taskOutputEvent(
  sessionId: string,
  item: TaskOutputItem,
  outputXml: string,
  inline: boolean,
  at: number,
): NotificationEvent {
  const inner =
    el('SessionId', sessionId) +
    (inline
      ? outputXml
      : `<sym:OutputReference taskId="${escapeAttr(item.taskId)}" successful="${item.successful}" size="${outputXml.length}">fetchTaskOutput</sym:OutputReference>`);
  return { topic: 'TaskOutputAvailable', at, xml: payload('TaskOutputAvailable', inner) };
}

export function taskStateEvent(
  sessionId: string,
  taskId: string,
  state: 'Done' | 'Failed',
  at: number,
): NotificationEvent {
  return {
    topic: `TaskStateChanged/${state}`,
    at,
    xml: payload('TaskStateChanged', el('SessionId', sessionId) + el('TaskId', taskId) + el('State', state)),
  };
}

export type SessionState = 'Open' | 'Detached' | 'Closed';

export function sessionStateEvent(sessionId: string, state: SessionState, at: number): NotificationEvent {
  return {
    topic: `SessionStateChanged/${state}`,
    at,
    xml: payload('SessionStateChanged', el('SessionId', sessionId) + el('State', state)),
  };
}

/** The producer ended: every subscription of it gets this last, whatever its filter. */
export function terminatedEvent(
  kind: 'session' | 'connection',
  id: string,
  cause: string,
  at: number,
): NotificationEvent {
  return {
    topic: 'ResourceTerminated',
    at,
    always: true,
    xml: payload('ResourceTerminated', el('Kind', kind) + el('Id', id) + el('Cause', cause)),
  };
}

/** The payload with its sequence number and topic as attributes of its root. */
function numbered(m: QueuedMessage, seq: number): string {
  const end = m.xml.search(/[\s/>]/);
  return `${m.xml.slice(0, end)} seq="${seq}" topic="${escapeAttr(m.topic)}"${m.xml.slice(end)}`;
}

/** The producer's address: `session:{id}` → …/sessions/{id}. */
function producerAddress(base: string, resource: string): { address: string; parameter: string; id: string } {
  const colon = resource.indexOf(':');
  const kind = resource.slice(0, colon);
  const id = resource.slice(colon + 1);
  return kind === 'session'
    ? { address: `${base}/sessions/${encodeURIComponent(id)}`, parameter: 'SessionId', id }
    : { address: `${base}/connections/${encodeURIComponent(id)}`, parameter: 'ConnectionId', id };
}

/** One wsnt:NotificationMessage (in a Notify, or in a GetMessagesResponse). */
export function notificationMessage(
  base: string,
  subscriptionId: string,
  resource: string | undefined,
  m: QueuedMessage,
  seq = m.seq,
): string {
  const producer = resource === undefined ? undefined : producerAddress(base, resource);
  return (
    `<wsnt:NotificationMessage>` +
    referenceElement(
      'wsnt:SubscriptionReference',
      `${base}/subscriptions/${encodeURIComponent(subscriptionId)}`,
      'SubscriptionId',
      subscriptionId,
    ) +
    // The topic is a QName in text: exclusive c14n (what signs the Body) keeps only namespace
    // declarations that element or attribute names use, so sym:path uses the prefix. Rebinding
    // it would otherwise change the topic without breaking the signature.
    `<wsnt:Topic Dialect="${dialectOf(m.topic)}" xmlns:sym="${SYM}" sym:path="${escapeAttr(m.topic)}">sym:${escapeText(m.topic)}</wsnt:Topic>` +
    (producer
      ? referenceElement('wsnt:ProducerReference', producer.address, producer.parameter, producer.id)
      : '') +
    `<wsnt:Message>${numbered(m, seq)}</wsnt:Message>` +
    `</wsnt:NotificationMessage>`
  );
}

export interface NotifyParts {
  body: string;
  /** Signed with the body: To, Action, MessageID and our sequence. */
  signed: SignedHeader[];
  /** The ConsumerReference's reference parameters, as WS-Addressing says they travel. */
  header: string;
  messageId: string;
}

/** A Notify carrying `messages` (in sequence order) to an HTTP consumer. */
export function notifyParts(
  id: string,
  sub: SubscriptionState & { sink: { kind: 'http' } },
  messages: QueuedMessage[],
  dropped: number,
): NotifyParts {
  const messageId = `urn:uuid:${randomUUID()}`;
  const body =
    `<wsnt:Notify xmlns:wsnt="${WSNT}">` +
    messages.map((m) => notificationMessage(sub.base, id, sub.resource, m)).join('') +
    `</wsnt:Notify>`;
  const first = messages[0]!.seq;
  const last = messages[messages.length - 1]!.seq;
  return {
    body,
    messageId,
    signed: [
      { qname: 'wsa:To', ns: WSA, content: escapeText(sub.sink.address) },
      { qname: 'wsa:Action', ns: WSA, content: NOTIFY_ACTION },
      { qname: 'wsa:MessageID', ns: WSA, content: messageId },
      {
        qname: 'sym:Sequence',
        ns: SYM,
        attrs:
          ` subscription="${escapeAttr(id)}" first="${first}" last="${last}"` +
          (dropped > 0 ? ` dropped="${dropped}"` : ''),
        content: '',
      },
    ],
    // Marked as reference parameters when the Subscribe was read (codecs.ts).
    header: sub.sink.parameters,
  };
}
