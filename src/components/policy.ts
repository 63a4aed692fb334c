/** The SLA control file, when one is configured: loaded, watched, and reported in the metrics. */
import type { GridRouter } from '../backend/grid-router';
import type { ProxyConfig } from '../config';
import { log } from '../log';
import type { ProxyMetrics } from '../observability/metrics';
import { PolicyManager } from '../policy/policy-manager';
import type { Resources } from './resources';

export async function startPolicies(
  config: ProxyConfig,
  router: GridRouter,
  metrics: ProxyMetrics,
  res: Resources,
): Promise<PolicyManager | null> {
  if (!config.policy.file) return null;
  // The first load reports before the manager is assigned; later reloads find it.
  let policies: PolicyManager | null = null;
  const started = await PolicyManager.start(
    config.policy.file,
    { resolveCluster: (url) => router.resolve(url) },
    {
      reloaded(trigger, outcome) {
        metrics.policyReloads.inc({
          trigger,
          result: outcome.ok ? (outcome.changed ? 'ok' : 'unchanged') : 'error',
        });
        metrics.policyLastReloadFailed.set(outcome.ok ? 0 : 1);
        metrics.policyLastReloadTime.setToCurrentTime();
        if (policies) metrics.policyServiceVersions.set(policies.current.uris.length);
      },
    },
  );
  policies = res.add('SLA control file', started, (p) => p.close());
  metrics.policyServiceVersions.set(started.current.uris.length);
  if (config.policy.watch) started.watchFile();
  log.info('SLA control file in effect', { file: started.file, serviceVersions: started.current.uris });
  return started;
}
