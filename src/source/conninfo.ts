// The two spellings of a connection string libpq accepts: a postgres:// URL and
// key=value settings (`host=db port=5432 password='a b'`). It parses the second by
// libpq's rules and blanks passwords out of any text, so no error can echo one.

import { UsageError } from '../errors.js';

/** Prefixes that make a string a URL for libpq (compared exactly, as libpq does). */
const URL_PREFIXES = ['postgresql://', 'postgres://'] as const;

/** Whether libpq would read `text` as a URL. */
export function isConnectionUrl(text: string): boolean {
  return URL_PREFIXES.some((prefix) => text.startsWith(prefix));
}

/** Whether libpq would read `text` as key=value settings: not a URL, and an `=` somewhere. */
export function isKeywordValue(text: string): boolean {
  return !isConnectionUrl(text) && text.includes('=');
}

/** Every keyword libpq knows (PostgreSQL 18's list): a word outside it is a typo. */
const LIBPQ_KEYWORDS: ReadonlySet<string> = new Set([
  'application_name',
  'channel_binding',
  'client_encoding',
  'connect_timeout',
  'dbname',
  'fallback_application_name',
  'gssdelegation',
  'gssencmode',
  'gsslib',
  'host',
  'hostaddr',
  'keepalives',
  'keepalives_count',
  'keepalives_idle',
  'keepalives_interval',
  'krbsrvname',
  'load_balance_hosts',
  'max_protocol_version',
  'min_protocol_version',
  'oauth_client_id',
  'oauth_client_secret',
  'oauth_issuer',
  'oauth_scope',
  'options',
  'passfile',
  'password',
  'port',
  'replication',
  'require_auth',
  'requirepeer',
  'scram_client_key',
  'scram_server_key',
  'service',
  'ssl_max_protocol_version',
  'ssl_min_protocol_version',
  'sslcert',
  'sslcertmode',
  'sslcompression',
  'sslcrl',
  'sslcrldir',
  'sslkey',
  'sslmode',
  'sslnegotiation',
  'sslpassword',
  'sslrootcert',
  'sslsni',
  'target_session_attrs',
  'tcp_user_timeout',
  'user',
]);

// No example password here: the CLI blanks anything shaped like one, hints included.
const HINT =
  "write settings as libpq does: host=db.example port=5432 dbname=prod user=recall, a value with blanks in single quotes ('a b')";

/**
 * Parses libpq key=value settings (libpq's conninfo_parse): words separated by
 * whitespace, blanks allowed around `=`, a value either bare (up to the next blank)
 * or in single quotes, a backslash taking the next character literally in both.
 * A later setting of a keyword wins, as in libpq.
 *
 * Why errors name words so carefully: after an unquoted password with a blank in it
 * (`password=two words`), the next "keyword" is the rest of the password, and a
 * mistyped URL (`postgres//user:secret@host/db?sslmode=require`) is one long
 * "keyword". So a word is quoted in a message only if libpq knows it, or it is a
 * plain identifier (a misspelt keyword) and no password came before it.
 */
export function parseKeywordValue(text: string): ReadonlyMap<string, string> {
  const settings = new Map<string, string>();
  let i = 0;
  let ordinal = 0;
  const isBlank = (c: string | undefined): boolean => c !== undefined && /\s/.test(c);
  const label = (word: string): string =>
    LIBPQ_KEYWORDS.has(word) || (/^[A-Za-z_][A-Za-z0-9_]*$/.test(word) && !settings.has('password'))
      ? `"${word}"`
      : `setting ${ordinal} (not shown: it may hold a password)`;
  while (i < text.length) {
    if (isBlank(text[i])) {
      i++;
      continue;
    }
    ordinal++;
    let keyword = '';
    while (i < text.length && text[i] !== '=' && !isBlank(text[i])) keyword += text[i++];
    while (isBlank(text[i])) i++;
    if (text[i] !== '=') throw new UsageError(`the source settings need an "=" after each keyword; ${label(keyword)} has none`, HINT);
    i++;
    while (isBlank(text[i])) i++;
    let value = '';
    if (text[i] === "'") {
      i++;
      for (;;) {
        if (i >= text.length) throw new UsageError(`the quoted value of ${label(keyword)} in the source settings is not closed`, HINT);
        const c = text[i++] as string;
        if (c === "'") break;
        if (c === '\\') {
          if (i < text.length) value += text[i++];
        } else value += c;
      }
    } else {
      while (i < text.length && !isBlank(text[i])) {
        const c = text[i++] as string;
        if (c === '\\') {
          if (i < text.length) value += text[i++];
        } else value += c;
      }
    }
    if (!LIBPQ_KEYWORDS.has(keyword)) {
      throw new UsageError(`the source settings have an unknown keyword: ${label(keyword)}`, `check its spelling; ${HINT}`);
    }
    settings.set(keyword, value);
  }
  return settings;
}

/**
 * Blanks every password a text may hold in either spelling: the userinfo of a URL
 * (`//user:secret@`) and a `password=` setting, quoted or not (also a URL's
 * `?password=`). A safety net for text Recall did not write itself (a mistyped flag
 * commander echoes): Recall's own messages never contain a connection string.
 */
export function redactPasswords(text: string): string {
  return text
    .replace(/(\/\/[^\s/:@]*:)\S*@/g, '$1*****@')
    .replace(/(\bpassword\s*=\s*)(?:'(?:\\.|[^'\\])*'?|(?:\\.|[^\s&'"])+)/gi, '$1*****');
}
