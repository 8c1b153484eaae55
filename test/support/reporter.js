// Mocha's spec output, plus mocha's own run statistics written as JSON to $MOCHA_JSON_RESULTS
// (when set), so .ci/run can report "N passed, N failed" from mocha's results.
const fs = require('node:fs');
const Mocha = require('mocha');

const { EVENT_RUN_END, EVENT_TEST_FAIL } = Mocha.Runner.constants;

class SpecWithResults extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    const failures = [];
    runner.on(EVENT_TEST_FAIL, (test, err) => failures.push({ title: test.fullTitle(), error: err && err.message }));
    runner.once(EVENT_RUN_END, () => {
      const file = process.env.MOCHA_JSON_RESULTS;
      if (file) fs.writeFileSync(file, JSON.stringify({ stats: this.stats, failures }, null, 2));
    });
  }
}

module.exports = SpecWithResults;
