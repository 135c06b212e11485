// An ES module handler (loaded by aws-lambda-ric with import(), not require):
// the Node.js hook still knows each invocation's request id and event.
import { promises as fs } from 'node:fs';
import { execFileSync } from 'node:child_process';

export const handler = async (event, context) => {
  await fs.writeFile(event.tmp, 'report');
  execFileSync('true');
  return { request_id: context.awsRequestId };
};
