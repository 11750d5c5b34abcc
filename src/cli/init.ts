// `recall init`: thin wrapper over the library's init.

import { assertSlotName, init } from '../capture/index.js';
import { UsageError } from '../errors.js';
import { logLine, sourceOf, tenancyOf, toJson, vaultOf, type CommandFlags } from './common.js';
import { imageProgress } from './image-progress.js';

export async function run(flags: CommandFlags & { slot?: string; publication?: string; resume?: boolean }): Promise<number> {
  if (flags.slot !== undefined) assertSlotName(flags.slot);
  if (flags.resume === true && flags.publication !== undefined)
    throw new UsageError('--publication cannot be given with --resume', 'a resume keeps the vault’s publication; leave --publication out');
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
      resume: flags.resume === true,
      log: progress?.log ?? logLine,
      ...(progress === undefined ? {} : { onProgress: progress.update }),
    });
  } finally {
    progress?.end();
  }
  if (flags.json) process.stdout.write(`${toJson(result)}\n`);
  else if (result.resumed !== undefined)
    process.stdout.write(
      `resumed: the gap from lsn:${result.resumed.fromLsn} to lsn:${result.resumed.toLsn} is recorded (points inside it are refused); ${result.tables} tables, ${result.imageRows} rows imaged through slot "${result.slot}"; now run \`recall capture\`\n`,
    );
  else if (result.created)
    process.stdout.write(
      `initialised: ${result.tables} tables, ${result.imageRows} rows imaged at lsn:${result.startLsn}${result.ddlHook ? ', DDL hook installed' : ''}; now run \`recall capture\`\n`,
    );
  else process.stdout.write(`already initialised (history from lsn:${result.startLsn}); nothing to do\n`);
  return 0;
}
