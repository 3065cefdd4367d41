// node --test: the URL "Queries (live status)" opens (compiled to lib/ by tsc first).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { statusPageUrl } from '../lib/status.js';

test('the status page is under the server base URL, with or without its slash', () => {
  assert.equal(statusPageUrl('/user/ann/lab/'), '/user/ann/lab/civis/queries/status');
  assert.equal(statusPageUrl('/user/ann/lab'), '/user/ann/lab/civis/queries/status');
  assert.equal(statusPageUrl('/'), '/civis/queries/status');
  assert.equal(
    statusPageUrl('http://hub.example:8000/user/b%C3%B8/x/'),
    'http://hub.example:8000/user/b%C3%B8/x/civis/queries/status'
  );
});
