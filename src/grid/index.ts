/** The reference grid's public surface, for the proxy's tests, benches and embedded mode. */
export { parseGridConfig, type ApplicationConfig, type GridConfig, type GridConfigInput } from './config';
export { startGrid, type Grid, type GridStats, type StartGridOptions } from './server';
export { STATS_SIGNAL, requestGridStats } from './stats-probe';
export type { ServiceContext, ServiceRun } from './services/types';
