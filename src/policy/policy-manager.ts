/**
 * Holds the policy in effect and replaces it on reload (file change, SIGHUP or the admin
 * call). A reload builds the new snapshot completely before swapping a single reference, so
 * requests in flight finish under the snapshot they started with; a file that fails to load
 * leaves the previous good policy in place and is reported on /readyz and in the metrics.
 */
import { resolve } from 'node:path';
import { watchFiles, type FileWatch } from '../file-watch';
import { log } from '../log';
import { ActivePolicy } from './active-policy';
import { loadControlFile, type LoadOptions } from './control-file';

export type ReloadTrigger = 'start' | 'file' | 'signal' | 'admin';

export interface ReloadOutcome {
  ok: boolean;
  /** false when the file's bytes were unchanged and nothing was rebuilt. */
  changed: boolean;
  error?: string;
}

export interface PolicyEvents {
  reloaded(trigger: ReloadTrigger, outcome: ReloadOutcome): void;
}

export class PolicyManager {
  private active: ActivePolicy;
  private lastErrorText: string | null = null;
  private watcher: FileWatch | null = null;
  /** Reloads run one at a time, in order. */
  private chain: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly file: string,
    private readonly opts: LoadOptions,
    private readonly events: PolicyEvents,
    first: ActivePolicy,
  ) {
    this.active = first;
  }

  /** The first load must succeed: without a good policy there is nothing to fall back to. */
  static async start(file: string, opts: LoadOptions, events: PolicyEvents): Promise<PolicyManager> {
    const abs = resolve(file);
    const first = await ActivePolicy.compile(await loadControlFile(abs, opts));
    const m = new PolicyManager(abs, opts, events, first);
    events.reloaded('start', { ok: true, changed: true });
    return m;
  }

  get current(): ActivePolicy {
    return this.active;
  }

  /** The message of the last failed reload, or null once a reload has succeeded. */
  get lastError(): string | null {
    return this.lastErrorText;
  }

  reload(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    const run = this.chain.then(() => this.reloadNow(trigger));
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async reloadNow(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    let outcome: ReloadOutcome;
    try {
      const control = await loadControlFile(this.file, this.opts);
      // A file event with the same bytes is a no-op; a signal or admin call always rebuilds, so
      // an edited payload schema (which the watcher does not see) is picked up by either.
      if (
        trigger === 'file' &&
        control.sha256 === this.active.control.sha256 &&
        this.lastErrorText === null
      ) {
        outcome = { ok: true, changed: false };
      } else {
        const next = await ActivePolicy.compile(control);
        const prev = this.active;
        this.active = next;
        prev.retire();
        this.lastErrorText = null;
        outcome = { ok: true, changed: true };
        log.info('SLA control file reloaded', { trigger, file: this.file, versions: next.uris.length });
      }
    } catch (e) {
      this.lastErrorText = (e as Error).message;
      outcome = { ok: false, changed: false, error: this.lastErrorText };
      log.error('SLA control file rejected; the previous policy stays in effect', {
        trigger,
        file: this.file,
        error: this.lastErrorText,
      });
    }
    this.events.reloaded(trigger, outcome);
    return outcome;
  }

  /** Reloads when the file changes (see watchFiles: replacing it by a rename counts). */
  watchFile(debounceMs = 150): void {
    this.watcher = watchFiles([this.file], 'SLA control file', () => void this.reload('file'), debounceMs);
  }

  async close(): Promise<void> {
    this.watcher?.close();
    await this.chain;
  }
}
