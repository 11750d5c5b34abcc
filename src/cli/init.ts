// `recall init`: thin wrapper over the library's init.

import { assertSlotName, init } from '../capture/index.js';
import { logLine, sourceOf, tenancyOf, toJson, vaultOf, type CommandFlags } from './common.js';
import { imageProgress } from './image-progress.js';

export async function run(flags: CommandFlags & { slot?: string; publication?: string }): Promise<number> {
  if (flags.slot !== undefined) assertSlotName(flags.slot);
  const source = sourceOf(flags);
  const tenancy = tenancyOf(flags);
  const vault = await vaultOf(flags);
  const progress = imageProgress();
  let result;
  try {
    result = await init({
      source,
      vault,
      tenancy,
      slot: flags.slot,
      publication: flags.publication,
      log: progress?.log ?? logLine,
      ...(progress === undefined ? {} : { onProgress: progress.update }),
    });
  } finally {
    progress?.end();
  }
  if (flags.json) process.stdout.write(`${toJson(result)}\n`);
  else if (result.created)
    process.stdout.write(
      `initialised: ${result.tables} tables, ${result.imageRows} rows imaged at lsn:${result.startLsn}${result.ddlHook ? ', DDL hook installed' : ''}; now run \`recall capture\`\n`,
    );
  else process.stdout.write(`already initialised (history from lsn:${result.startLsn}); nothing to do\n`);
  return 0;
}
