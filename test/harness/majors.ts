// Which PostgreSQL majors a test runs against: the oldest and newest installed
// cover the version differences that matter; RECALL_TEST_MAJORS overrides the choice.
import { MIN_SERVER_VERSION } from '../../src/source/index.js';
import { installedMajors } from '../../src/sandbox/index.js';

/** Installed majors Recall supports (older ones are installed only to test the refusal). */
const supported = (): number[] => installedMajors().filter((major) => major * 10000 >= MIN_SERVER_VERSION);

/** Installed majors older than Recall supports. */
export function unsupportedMajors(): number[] {
  return installedMajors().filter((major) => major * 10000 < MIN_SERVER_VERSION);
}

/** The majors to test: 'all' the oldest and newest supported ones installed, 'one' the newest; RECALL_TEST_MAJORS ("14,16") wins. */
export function testMajors(scope: 'all' | 'one'): number[] {
  const installed = supported();
  const listed = fromEnvironment(installed);
  if (listed !== undefined) return scope === 'all' ? listed : listed.slice(0, 1);

  const oldest = installed[0];
  const newest = installed.at(-1);
  if (oldest === undefined || newest === undefined) {
    throw new Error('no PostgreSQL server package is installed (pg14, pg18, … in package.json): run npm install');
  }
  if (scope === 'one' || oldest === newest) return [newest];
  return [oldest, newest];
}

// A listed major that is not installed fails loudly: silently testing fewer versions hides gaps.
function fromEnvironment(installed: readonly number[]): number[] | undefined {
  const list = process.env.RECALL_TEST_MAJORS?.trim();
  if (!list) return undefined;
  const majors = [...new Set(list.split(',').map((item) => Number(item.trim())))];
  const missing = majors.filter((major) => !installed.includes(major));
  if (missing.length > 0) {
    throw new Error(
      `RECALL_TEST_MAJORS=${list} names majors that are not installed (${missing.join(', ')}); ` +
        `installed: ${installed.join(', ') || 'none'}`,
    );
  }
  return majors;
}
