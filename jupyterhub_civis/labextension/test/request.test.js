// node --test: the pure part of the "Share…" dialog (compiled to lib/ by tsc first).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildLiveRequest, buildShareRequest, expiry, names } from '../lib/request.js';

const NOW = Date.UTC(2026, 0, 1);

test('names are split on commas and lines, trimmed, without repeats', () => {
  assert.deepEqual(names(' ann, bob\ncy,, ann '), ['ann', 'bob', 'cy']);
  assert.deepEqual(names(''), []);
});

test('expiry is the end of that day in UTC, in seconds', () => {
  assert.equal(expiry('', NOW), null);
  assert.equal(expiry('2026-01-02', NOW), Date.UTC(2026, 0, 2, 23, 59, 59) / 1000);
  assert.throws(() => expiry('02/01/2026', NOW), /YYYY-MM-DD/);
  assert.throws(() => expiry('2025-12-31', NOW), /future/);
});

test('a request needs an audience and carries the path as given', () => {
  const form = { users: 'ann', groups: '', everyone: false, expires: '', title: ' Q3 ' };
  assert.deepEqual(buildShareRequest('a/b.ipynb', form, NOW), {
    path: 'a/b.ipynb',
    title: 'Q3',
    audience: { users: ['ann'], groups: [], everyone: false },
    expires: null
  });
  assert.throws(
    () => buildShareRequest('x.ipynb', { ...form, users: ' , ' }, NOW),
    /Audience: name at least one/
  );
  assert.equal(
    buildShareRequest('x.ipynb', { ...form, users: '', everyone: true }, NOW).audience.everyone,
    true
  );
});

test('a report request: schedule, who refreshes, refresh on view; audience optional', async () => {
  const { buildReportRequest } = await import('../lib/request.js');
  const form = { users: 'ann', groups: 'sales', everyone: false, expires: '', title: ' Daily ' };
  const policy = { cron: ' 0 7  * * 1-5 ', timezone: 'Europe/Paris', onDemand: 'audience',
                   refreshAfterMinutes: '90' };
  assert.deepEqual(buildReportRequest('r/daily.ipynb', form, policy), {
    path: 'r/daily.ipynb',
    title: 'Daily',
    audience: { users: ['ann'], groups: ['sales'], everyone: false },
    expires: null,
    schedule: { cron: '0 7 * * 1-5', timezone: 'Europe/Paris' },
    on_demand: 'audience',
    refresh_after: 5400
  });
  const bare = buildReportRequest('x.ipynb', { ...form, users: '', groups: '' },
    { cron: '', timezone: '', onDemand: 'owner', refreshAfterMinutes: '' });
  assert.equal(bare.audience, null);
  assert.equal(bare.schedule, null);
  assert.equal(bare.refresh_after, null);
  assert.equal(buildReportRequest('x.ipynb', form, { ...policy, timezone: ' ' }).schedule.timezone, 'UTC');
  assert.throws(() => buildReportRequest('x.ipynb', form, { ...policy, cron: '0 7 * *' }), /five fields/);
  const until = buildReportRequest('x.ipynb', { ...form, expires: '2026-01-02' }, policy, NOW);
  assert.equal(until.expires, NOW / 1000 + 2 * 86400 - 1);
  assert.throws(() => buildReportRequest('x.ipynb', { ...form, expires: '2025-12-31' }, policy, NOW),
    /future/);
  assert.throws(() => buildReportRequest('x.ipynb', form, { ...policy, refreshAfterMinutes: '-1' }),
    /minutes above 0/);
});

test('a live share sends the title and the seconds until the end of the chosen day', () => {
  const form = { users: '', groups: '', everyone: false, expires: '', title: ' pair ' };
  assert.deepEqual(buildLiveRequest(form, NOW), { title: 'pair' });
  const until = buildLiveRequest({ ...form, expires: '2026-01-02' }, NOW);
  assert.equal(until.expires_in, 2 * 86400 - 1);
  assert.throws(() => buildLiveRequest({ ...form, expires: '2025-12-31' }, NOW), /future/);
});
