/**
 * Root hooks (loaded by .mocharc.json): the suite must leave nothing behind.
 * Mocha runs without `exit: true`, so a leaked socket, timer or child keeps the
 * process alive after the last test. Rather than hang CI, an unreferenced
 * timer set after the last test fails the run, naming what is still open. It
 * is unreferenced, so a clean run exits before it fires.
 */
const GRACE_MS = 20_000;

export const mochaHooks = {
  afterAll(): void {
    setTimeout(() => {
      const open = process
        .getActiveResourcesInfo()
        .filter((kind) => kind !== 'Timeout' && kind !== 'TTYWrap');
      process.stderr.write(
        `\nthe test suite finished, but ${GRACE_MS / 1000} s later the process is still kept alive by: ` +
          `${open.join(', ') || 'timers'}; something a test opened was not closed\n`,
      );
      // Mocha sets the exit code from its failure count in an 'exit' listener; this verdict is ours.
      process.removeAllListeners('exit');
      process.exit(1);
    }, GRACE_MS).unref();
  },
};
