import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** The package root, found from the compiled file's location so that it works from src/ and dist/. */
function findRoot(start: string): string {
  let dir = start;
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'wsdl'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find the package root above ${start}`);
    dir = up;
  }
}

export const ROOT = findRoot(__dirname);
export const WSDL_DIR = join(ROOT, 'wsdl');
export const SCHEMA_DIR = join(ROOT, 'schemas');
