import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseGridConfig } from '../../src/grid/config';
import { ROOT } from '../../src/paths';

/** Every key path a configuration holds (array items as `[]`, the union over all items). */
function keyPaths(value: unknown, prefix = ''): Set<string> {
  const out = new Set<string>();
  if (Array.isArray(value)) {
    for (const item of value) for (const p of keyPaths(item, `${prefix}[]`)) out.add(p);
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      const path = prefix === '' ? k : `${prefix}.${k}`;
      out.add(path);
      for (const p of keyPaths(v, path)) out.add(p);
    }
  }
  return out;
}

describe('docs/grid.md: the reference grid configuration is documented key by key', () => {
  const doc = readFileSync(join(ROOT, 'docs', 'grid.md'), 'utf8');
  const example = JSON.parse(readFileSync(join(ROOT, 'docs', 'examples', 'grid.json'), 'utf8')) as unknown;

  it('has an example file that the grid accepts and that sets every key', () => {
    const parsed = parseGridConfig(example);
    const withUsers = parsed.applications.some((a) => a.users !== undefined);
    expect(withUsers, 'the example shows application users').to.equal(true);
    const defaults = parseGridConfig({});
    // The secret belongs in GRID_SHARED_SECRET, not a file; plaintext and tls exclude each other;
    // machine and tls have no default.
    expect(Object.keys(example as object).sort()).to.deep.equal(
      [
        ...Object.keys(defaults).filter((k) => k !== 'sharedSecret' && k !== 'plaintext'),
        'tls',
        'machine',
      ].sort(),
    );
    expect(doc).to.contain('| `plaintext` |');
  });

  it('documents every key with its default in the keys table', () => {
    const paths = keyPaths(parseGridConfig(example));
    expect(paths.has('applications[].users[].password')).to.equal(true);
    for (const path of paths) {
      expect(doc, path).to.contain(`| \`${path}\` |`);
    }
    expect(doc).to.contain('| `sharedSecret` |');
    expect(doc).to.contain('GRID_SHARED_SECRET');
  });
});
