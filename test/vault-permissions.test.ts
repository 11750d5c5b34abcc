// The vault holds the whole history of the database: it is created owner-only
// (directories 0700, files 0600) whatever the umask, and a vault that others can
// read is named on every command that opens it.

import assert from 'node:assert/strict';
import { chmodSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fixture } from './harness/recall.js';
import { testMajors } from './harness/majors.js';
import { endAfterSuite } from './harness/workload.js';

/** Every path under a directory, itself included. */
function walk(directory: string): string[] {
  return [
    directory,
    ...readdirSync(directory, { withFileTypes: true }).flatMap((entry) => {
      const path = join(directory, entry.name);
      return entry.isDirectory() ? walk(path) : [path];
    }),
  ];
}

for (const major of testMajors('one')) {
  describe(`vault permissions on PostgreSQL ${major}`, () => {
    const { fixtures } = endAfterSuite();

    test('owner-only whatever the umask, and a vault others can read is named', async () => {
      const f = await fixture(major, `CREATE TABLE tenants (id text PRIMARY KEY); INSERT INTO tenants VALUES ('a');`);
      fixtures.push(f);
      const previous = process.umask(0o022);
      try {
        // The child inherits the umask that would leave files 0644 and directories 0755.
        assert.equal((await f.recall(['init'])).code, 0);
        await f.db.query(`INSERT INTO tenants VALUES ('b')`);
        assert.equal((await f.recall(['capture', '--until-caught-up'])).code, 0);
      } finally {
        process.umask(previous);
      }
      const modes = walk(f.vault).map((path) => [path, statSync(path).isDirectory(), statSync(path).mode & 0o777] as const);
      assert.ok(
        modes.some(([, directory]) => !directory),
        'the vault has files',
      );
      for (const [path, directory, mode] of modes) {
        assert.equal(mode, directory ? 0o700 : 0o600, `${path}: mode ${mode.toString(8)}`);
      }
      const quiet = await f.recall(['show', '--tenant', 'a', '--at', 'now']);
      assert.doesNotMatch(quiet.stderr, /readable by other users/);

      chmodSync(f.vault, 0o755);
      const shown = await f.recall(['show', '--tenant', 'a', '--at', 'now']);
      assert.equal(shown.code, 0, shown.stderr);
      assert.match(
        shown.stderr,
        /^warning: the vault .* is readable by other users \(mode 0755\), though it holds the whole history of the database: chmod -R go-rwx /m,
      );
    });
  });
}
