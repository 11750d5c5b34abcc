// recall.yml: read once per command into a plain document; each setting's own
// module validates its section (tenancy here, the memory limit in the vault).

import { existsSync, readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { UsageError } from '../errors.js';

/** The parsed recall.yml at `path`, or undefined if it does not exist (an error if it was named explicitly). */
export function loadConfigDocument(path = 'recall.yml', required = false): unknown {
  if (!existsSync(path)) {
    if (required) throw new UsageError(`config file ${path} does not exist`, 'check the --config path');
    return undefined;
  }
  try {
    return parseYaml(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new UsageError(`${path} is not valid YAML: ${(error as Error).message}`, `fix ${path}`);
  }
}

/** A top-level key of a parsed recall.yml, if set. */
export function configValue(document: unknown, key: string): unknown {
  return typeof document === 'object' && document !== null ? (document as Record<string, unknown>)[key] : undefined;
}
