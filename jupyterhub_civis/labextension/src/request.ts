/**
 * What the "Share…" dialog sends (pure: tested with node --test).
 *
 * The server extension (`jupyterhub_civis/share_publish.py`) reads the notebook
 * itself, as saved, and forwards this to the civis service's `api/shares`.
 */

export interface FormValues {
  users: string;
  groups: string;
  everyone: boolean;
  /** a date, YYYY-MM-DD (the link works until the end of that day, UTC); "" = never */
  expires: string;
  title: string;
}

export interface ShareRequest {
  path: string;
  title: string;
  audience: { users: string[]; groups: string[]; everyone: boolean };
  expires: number | null;
}

/** "ann, bob\ncy" → ["ann", "bob", "cy"] (no empties, no repeats). */
export function names(text: string): string[] {
  const out: string[] = [];
  for (const part of text.split(/[,\n]/)) {
    const name = part.trim();
    if (name && !out.includes(name)) {
      out.push(name);
    }
  }
  return out;
}

/** The end of day `date` (YYYY-MM-DD) in UTC, in seconds since the epoch; null if empty. */
export function expiry(date: string, now: number = Date.now()): number | null {
  const text = date.trim();
  if (!text) {
    return null;
  }
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (!m) {
    throw new Error('Expires: give a date as YYYY-MM-DD, or leave it empty');
  }
  const end = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), 23, 59, 59);
  if (Number.isNaN(end) || end <= now) {
    throw new Error('Expires: the date must be in the future');
  }
  return end / 1000;
}

export function buildShareRequest(path: string, form: FormValues, now?: number): ShareRequest {
  const audience = {
    users: names(form.users),
    groups: names(form.groups),
    everyone: form.everyone
  };
  if (!audience.users.length && !audience.groups.length && !audience.everyone) {
    throw new Error('Audience: name at least one user or group, or choose everyone');
  }
  return { path, title: form.title.trim(), audience, expires: expiry(form.expires, now) };
}

/** The "Report" choice's refresh policy, as typed in the dialog. */
export interface ReportValues {
  /** five-field cron expression; "" = no schedule */
  cron: string;
  /** IANA time zone of the schedule, e.g. Europe/Paris */
  timezone: string;
  /** who may press Refresh: the owner only, or also the audience */
  onDemand: 'owner' | 'audience';
  /** refresh on view when the latest run is older than this many minutes; "" = never */
  refreshAfterMinutes: string;
}

export interface ReportRequest {
  path: string;
  title: string;
  audience: { users: string[]; groups: string[]; everyone: boolean } | null;
  /** when the report's link stops working for its audience (seconds since the epoch) */
  expires: number | null;
  schedule: { cron: string; timezone: string } | null;
  on_demand: 'owner' | 'audience';
  refresh_after: number | null;
}

/** A report's request (the civis service checks the cron expression and time zone in full). */
export function buildReportRequest(
  path: string,
  form: FormValues,
  report: ReportValues,
  now: number = Date.now()
): ReportRequest {
  const audience = {
    users: names(form.users),
    groups: names(form.groups),
    everyone: form.everyone
  };
  const open = audience.users.length || audience.groups.length || audience.everyone;
  const cron = report.cron.trim().split(/\s+/).filter(Boolean).join(' ');
  if (cron && cron.split(' ').length !== 5) {
    throw new Error('Schedule: a cron expression has five fields, e.g. "0 7 * * 1-5"');
  }
  const minutes = report.refreshAfterMinutes.trim();
  let refreshAfter: number | null = null;
  if (minutes) {
    const value = Number(minutes);
    if (!Number.isFinite(value) || value <= 0) {
      throw new Error('Refresh on view: give a number of minutes above 0, or leave it empty');
    }
    refreshAfter = value * 60;
  }
  return {
    path,
    title: form.title.trim(),
    audience: open ? audience : null,
    expires: expiry(form.expires, now),
    schedule: cron ? { cron, timezone: report.timezone.trim() || 'UTC' } : null,
    on_demand: report.onDemand,
    refresh_after: refreshAfter
  };
}

/** What "Live (share this running server)" sends: the code's expiry in seconds from
 * now (until the end of the chosen day, UTC; none: the service's default, one day). */
export interface LiveRequest {
  title: string;
  expires_in?: number;
}

export function buildLiveRequest(form: FormValues, now: number = Date.now()): LiveRequest {
  const out: LiveRequest = { title: form.title.trim() };
  const end = expiry(form.expires, now);
  if (end !== null) {
    out.expires_in = Math.max(60, Math.round(end - now / 1000));
  }
  return out;
}
