/**
 * Calls back, debounced, when any of some files changes. It watches each file's directory, not
 * the file: editors and deploy tools replace a file by renaming a new one over it, which ends a
 * watch on the old inode.
 */
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { log } from './log';

export interface FileWatch {
  close(): void;
}

export function watchFiles(
  files: readonly string[],
  what: string,
  onChange: () => void,
  debounceMs = 150,
): FileWatch {
  const byDir = new Map<string, Set<string>>();
  for (const f of files) {
    const abs = resolve(f);
    const names = byDir.get(dirname(abs)) ?? new Set<string>();
    names.add(basename(abs));
    byDir.set(dirname(abs), names);
  }
  let timer: NodeJS.Timeout | null = null;
  const watchers: FSWatcher[] = [];
  for (const [dir, names] of byDir) {
    const w = watch(dir, (_event, changed) => {
      if (changed !== null && !names.has(changed.toString())) return;
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => {
        timer = null;
        onChange();
      }, debounceMs);
    });
    w.on('error', (e) => log.warn(`cannot watch the ${what}`, { directory: dir, error: e.message }));
    watchers.push(w);
  }
  return {
    close() {
      for (const w of watchers) w.close();
      if (timer) clearTimeout(timer);
    },
  };
}
