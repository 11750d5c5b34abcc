// The public face of the sandbox: throwaway PostgreSQL clusters run from the server
// binaries in npm packages, for the test suite and `recall demo`.
export { installedMajors, startCluster } from './cluster.js';
export { serverUser, type ServerUser } from './server-process.js';
export type { Cluster, ClusterOptions } from './cluster.js';
