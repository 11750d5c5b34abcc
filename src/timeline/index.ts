// The timeline's public face: points and LSNs, and reading the past from the vault
// (a tenant's rows at a point, its changes between two).

export { formatLsn, parseLsn, type Lsn } from './lsn.js';
export { describePoint, formatMicros, parsePoint, type Point } from './point.js';
export { show, layOut, sourceColumn, type ShowOptions, type ShownRow } from './show.js';
export { log, type LogOptions, type LoggedChange } from './log.js';
export { layersSql, layoutAt, VaultReader, vaultEnd, type FutureBound } from './vault-reader.js';
