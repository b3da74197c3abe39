/**
 * The conformance suite: the Autobahn|Testsuite case groups, run by a
 * raw-TCP peer against our server (`serve` + echo) and our client
 * (`connect` + echo), ending with a table of passed/total per group.
 *
 * @module
 */

import {
  type CaseGroup,
  record,
  resultTable,
  type Role,
  runAgainstClient,
  runAgainstServer,
} from "./_cases.ts";
import { basicGroups } from "./_cases_basic.ts";
import { closingGroup } from "./_cases_closing.ts";
import { deflateGroups } from "./_cases_deflate.ts";
import { fragmentationGroup } from "./_cases_fragmentation.ts";
import { limitGroups } from "./_cases_limits.ts";
import { utf8Group } from "./_cases_utf8.ts";

const groups: CaseGroup[] = [
  ...basicGroups,
  fragmentationGroup,
  utf8Group,
  closingGroup,
  ...limitGroups,
  ...deflateGroups,
];

// Runs only some cases, e.g. CONFORMANCE_ONLY=5 or CONFORMANCE_ONLY=6.4,12,13
const only = Deno.env.get("CONFORMANCE_ONLY")?.split(",");

for (const group of groups) {
  for (const role of ["server", "client"] as Role[]) {
    const cases = group.cases.filter((c) =>
      (c.roles ?? ["server", "client"]).includes(role) &&
      (only === undefined ||
        only.some((prefix) => c.id === prefix || c.id.startsWith(prefix + ".")))
    );
    if (cases.length === 0) continue;
    Deno.test(`conformance ${group.id} ${group.name}: our ${role}`, async (t) => {
      for (const testCase of cases) {
        await t.step(`${testCase.id} ${testCase.title}`, async () => {
          try {
            const outcome = role === "server"
              ? await runAgainstServer(testCase)
              : await runAgainstClient(testCase);
            record(
              group,
              role,
              testCase,
              outcome === "non-strict" ? "non-strict" : "pass",
            );
          } catch (error) {
            record(group, role, testCase, "fail");
            throw error;
          }
        });
      }
    });
  }
}

Deno.test("conformance: results per group", () => {
  console.log("\n" + resultTable());
});
