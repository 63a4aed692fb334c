/**
 * The resource-properties documents of a session and of a connection (schemas/symphony.xsd,
 * SessionResourceProperties and ConnectionResourceProperties). One document is built per
 * request, from one grid status and one read of the store, so that every property in an answer
 * comes from the same moment.
 */
import { escapeText } from '../soap/xml';
import { SYM, WSRF_RL, WSRF_RP, XPATH_10, XSI } from '../soap/ws-namespaces';

const PREFIX: Record<string, string> = { [SYM]: 'sym', [WSRF_RL]: 'wsrf-rl', [WSRF_RP]: 'wsrf-rp' };

export interface Property {
  /** `{namespace}local` */
  qname: string;
  /** The element on its own, declaring its namespace. */
  xml: string;
  /** The same element inside the document (the namespace is declared on the root). */
  inner: string;
}

export interface PropertiesDocument {
  /** The properties the document declares, present or not: others are not properties. */
  declared: ReadonlySet<string>;
  properties: Property[];
  /** The whole document, as GetResourcePropertyDocument answers it and queries see it. */
  xml: string;
}

type Value = string | number | null | undefined;

function property(ns: string, local: string, value: Value): Property | null {
  if (value === undefined) return null;
  const p = PREFIX[ns]!;
  const body =
    value === null
      ? { attrs: ` xsi:nil="true"`, text: null }
      : { attrs: '', text: escapeText(typeof value === 'number' ? String(value) : value) };
  const decl = value === null ? ` xmlns:xsi="${XSI}"` : '';
  const tag = `${p}:${local}`;
  const close = body.text === null ? '/>' : `>${body.text}</${tag}>`;
  return {
    qname: `{${ns}}${local}`,
    xml: `<${tag} xmlns:${p}="${ns}"${decl}${body.attrs}${close}`,
    inner: `<${tag}${decl}${body.attrs}${close}`,
  };
}

function document(root: string, rows: [string, string, Value][]): PropertiesDocument {
  const declared = new Set(rows.map(([ns, local]) => `{${ns}}${local}`));
  const properties = rows
    .map(([ns, local, v]) => property(ns, local, v))
    .filter((p): p is Property => p !== null);
  const xml =
    `<sym:${root} xmlns:sym="${SYM}" xmlns:wsrf-rl="${WSRF_RL}" xmlns:wsrf-rp="${WSRF_RP}">` +
    properties.map((p) => p.inner).join('') +
    `</sym:${root}>`;
  return { declared, properties, xml };
}

function iso(ms: number | null | undefined): string | null | undefined {
  return ms === null || ms === undefined ? ms : new Date(ms).toISOString();
}

export interface SessionFacts {
  sessionId: string;
  state: string;
  name?: string | undefined;
  priority?: number | undefined;
  application?: string | undefined;
  cluster?: string | undefined;
  connectionId: string;
  owner: string;
  pending: number;
  running: number;
  done: number;
  failed: number;
  outputsWaiting: number;
  createdMs?: number | undefined;
  nowMs: number;
  /** null: no termination scheduled. */
  terminationMs: number | null;
}

export function sessionProperties(f: SessionFacts): PropertiesDocument {
  return document('SessionResourceProperties', [
    [SYM, 'SessionId', f.sessionId],
    [SYM, 'State', f.state],
    [SYM, 'Name', f.name || undefined],
    [SYM, 'Priority', f.priority || undefined],
    [SYM, 'ApplicationName', f.application],
    [SYM, 'ClusterURL', f.cluster],
    [SYM, 'ConnectionId', f.connectionId],
    [SYM, 'Owner', f.owner],
    [SYM, 'SubmittedTaskCount', f.pending + f.running + f.done + f.failed],
    [SYM, 'PendingTaskCount', f.pending],
    [SYM, 'RunningTaskCount', f.running],
    [SYM, 'DoneTaskCount', f.done],
    [SYM, 'FailedTaskCount', f.failed],
    [SYM, 'OutputsWaiting', f.outputsWaiting],
    [SYM, 'Created', iso(f.createdMs)],
    [WSRF_RL, 'CurrentTime', iso(f.nowMs)],
    [WSRF_RL, 'TerminationTime', iso(f.terminationMs)],
    [WSRF_RP, 'QueryExpressionDialect', XPATH_10],
  ]);
}

export interface ConnectionFacts {
  connectionId: string;
  application?: string | undefined;
  cluster?: string | undefined;
  owner: string;
  createdMs?: number | undefined;
  nowMs: number;
  terminationMs: number | null;
}

export function connectionProperties(f: ConnectionFacts): PropertiesDocument {
  return document('ConnectionResourceProperties', [
    [SYM, 'ConnectionId', f.connectionId],
    [SYM, 'ApplicationName', f.application],
    [SYM, 'ClusterURL', f.cluster],
    [SYM, 'Owner', f.owner],
    [SYM, 'Created', iso(f.createdMs)],
    [WSRF_RL, 'CurrentTime', iso(f.nowMs)],
    [WSRF_RL, 'TerminationTime', iso(f.terminationMs)],
    [WSRF_RP, 'QueryExpressionDialect', XPATH_10],
  ]);
}
