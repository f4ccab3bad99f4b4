/** Says plainly, at the start and the end of a run, whether the PostgreSQL suites ran. */
export default function setup(): () => void {
  const message = process.env.TEST_DATABASE_URL
    ? `PostgreSQL suites: running against TEST_DATABASE_URL`
    : 'PostgreSQL suites: SKIPPED (TEST_DATABASE_URL is not set; .ci/run sets it)';
  process.stdout.write(`\n${message}\n\n`);
  return () => process.stdout.write(`\n${message}\n`);
}
