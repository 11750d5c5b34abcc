// The tenants named on the command line: --tenant may repeat, and each value is a
// comma-separated list in which `\,` stands for a comma inside an id (and `\\` for a
// backslash), so that every tenant id can be named.

/** Collects repeated --tenant values (commander's option processor). */
export function collectTenants(value: string, previous: readonly string[] = []): string[] {
  return [...previous, value];
}

/** The tenant ids in the given --tenant values, in order, each trimmed. */
export function splitTenants(values: readonly string[]): string[] {
  return values.flatMap((value) => {
    const ids: string[] = [];
    let current = '';
    for (let i = 0; i < value.length; i++) {
      const char = value[i]!;
      const next = value[i + 1];
      if (char === '\\' && (next === ',' || next === '\\')) {
        current += next;
        i++;
      } else if (char === ',') {
        ids.push(current.trim());
        current = '';
      } else current += char;
    }
    ids.push(current.trim());
    return ids;
  });
}
