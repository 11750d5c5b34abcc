// Report's public face: what a window of the history, or a verify's differences, did to each tenant.

export { report, type ActorImpact, type ImpactReport, type ReportOptions, type TableImpact, type TenantImpact } from './report.js';
export { reportFromVerify, type LossReport, type TableLoss, type TenantLoss } from './from-verify.js';
