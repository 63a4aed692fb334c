import type { StateStore } from '../store/store';
import type { GridRouter } from './grid-router';

/** What the services need; built once at start and shared by all requests. */
export interface ServiceDeps {
  router: GridRouter;
  store: StateStore;
  maxTasksPerBatch: number;
  reliability: {
    clientKeyTtlMs: number;
    maxLeaseMs: number;
    gridHoldMs: number;
  };
}
