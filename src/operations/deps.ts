import type { StateStore } from '../store/store';
import type { GridRouter } from '../backend/grid-router';

/** What the operation handlers need; built once at start and shared by all requests. */
export interface OperationDeps {
  router: GridRouter;
  store: StateStore;
  maxTasksPerBatch: number;
  reliability: {
    clientKeyTtlMs: number;
    maxLeaseMs: number;
    gridHoldMs: number;
  };
}
