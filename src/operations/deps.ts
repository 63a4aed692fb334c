import type { StateStore } from '../store/store';
import type { GridRouter } from '../backend/grid-router';
import type { Lifetimes } from '../lifetime/lifetimes';

/** What the operation handlers need; built once at start and shared by all requests. */
export interface OperationDeps {
  router: GridRouter;
  store: StateStore;
  /** Idle leases: opened resources are scheduled to end, used ones pushed forward. */
  lifetimes: Lifetimes;
  maxTasksPerBatch: number;
  reliability: {
    clientKeyTtlMs: number;
    maxLeaseMs: number;
    gridHoldMs: number;
  };
}
