import type { UsageSink } from '../accounting/sink';
import type { StateStore } from '../store/store';
import type { GridRouter } from '../backend/grid-router';
import type { Lifetimes } from '../lifetime/lifetimes';
import type { XPathEngine } from '../resources/xpath/xpath-engine';
import type { PublicAddress } from '../server/endpoint-url';
import type { EnumerationConfig } from '../resources/enumeration';
import type { TaskOutputItem } from '../pipeline/operation';
import type { Destinations } from '../notifications/destinations';
import type { Notifier } from '../notifications/notifier';
import type { NotificationLimits } from '../notifications/handlers';

/** What the operation handlers need; built once at start and shared by all requests. */
export interface OperationDeps {
  router: GridRouter;
  store: StateStore;
  /** Idle leases: opened resources are scheduled to end, used ones pushed forward. */
  lifetimes: Lifetimes;
  maxTasksPerBatch: number;
  /** Where clients reach the service: the base of the endpoint references we hand out. */
  publicAddress?: PublicAddress;
  /** WS-Enumeration bounds (defaults: resources/enumeration.ts). */
  enumeration?: EnumerationConfig;
  /** Writes one task output as the sym:Output element (enumeration items); from the contract. */
  encodeOutput?: (item: TaskOutputItem) => string;
  /** The WS-Resource operations' query engine and lifetime bounds. */
  resources?: {
    /** Without one, the handlers share an engine started on first use. */
    xpath?: XPathEngine;
    /** How far ahead SetTerminationTime may schedule an end; 0: no bound. */
    maxTerminationMs: number;
    /** false: clients may not set termination times (TerminationTimeChangeRejectedFault). */
    clientTerminationTimes?: boolean;
  };
  /** WS-BaseNotification bounds and allowed destinations (defaults: no destinations, pull points only). */
  notifications?: { limits: NotificationLimits; destinations: Destinations };
  /** Publishes session and connection events to subscribers; absent: nothing is published. */
  notifier?: Notifier;
  /** Usage records of the tasks whose outputs the grid hands to this proxy; absent: accounting off. */
  usage?: UsageSink;
  reliability: {
    clientKeyTtlMs: number;
    maxLeaseMs: number;
    gridHoldMs: number;
  };
}
