//! junit.xml: one testsuite per run, one testcase per verdict row: a cell
//! (all its runs), or one metric of a cell that passed on both sides.
//! A cell whose new runs fail, or whose throughput regressed, is a
//! `<failure>` carrying the title and a console excerpt; a cell the harness
//! could not judge (MISS) is an `<error>`. Written with `quick-junit`, whose
//! output CI systems (GitHub test reporters, GitLab `reports: junit`) read.

use crate::error::{infra, Result};
use crate::nightly::{RunReport, Status};
use crate::text::visible;
use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
use std::time::Duration;

/// junit.xml of the runs: one test suite per run, one test case per verdict row (a cell or one of its metrics); a row with a failing run is a failure quoting its title and console excerpt.
pub fn render(reports: &[RunReport]) -> Result<String> {
    let mut report = Report::new("kregress");
    for r in reports {
        let mut suite = TestSuite::new(format!("{} {}", r.rec.scenario, r.rec.run_id));
        suite.add_property(Property::new("run_id", r.rec.run_id.as_str()));
        suite.add_property(Property::new("scenario_file", visible(&r.rec.scenario_file.display().to_string())));
        if let Some(b) = &r.baseline {
            suite.add_property(Property::new("baseline", b.run_id.as_str()));
        }
        for v in &r.verdicts {
            let runs = r.runs(&v.cell);
            let failing = runs.iter().find(|c| c.outcome.is_failure());
            let status = if let Some(c) = failing {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                // quick-junit drops C0 controls; visible() also spells out
                // what it keeps but XML forbids (U+FFFE), the same as summary.md.
                s.set_message(visible(&format!("{}: {}", v.status.as_str(), c.title.as_deref().unwrap_or("no title"))));
                s.set_type(c.kind.map_or(c.outcome.as_str(), |k| k.as_str()));
                s.set_description(visible(&format!(
                    "{}\n\nconsole ({}):\n{}\n\nreproduce: {}",
                    v.new,
                    r.cell_dir(c).join("console.log").display(),
                    r.excerpt(c, 20),
                    super::repro_command(&r.rec, c)
                )));
                s
            } else if v.status == Status::ThroughputRegression {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(format!("THROUGHPUT_REGRESSION: {}", super::fmt_delta(v)));
                s.set_type("THROUGHPUT_REGRESSION");
                s
            } else if runs.is_empty() {
                let mut s = TestCaseStatus::skipped();
                s.set_message("not run tonight");
                s
            } else if v.status == Status::Inconclusive && v.metric.is_empty() {
                // The outcome is unknown (the harness failed). A throughput
                // row that is INCONCLUSIVE (too few boots, too noisy) is not
                // an error of the cell: its status property says so.
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                s.set_message(visible(&format!("INCONCLUSIVE: {}", v.note)));
                s.set_type("MISS");
                s
            } else {
                TestCaseStatus::success()
            };
            let name = if v.metric.is_empty() { v.cell.clone() } else { format!("{} [{}]", v.cell, v.metric) };
            let mut tc = TestCase::new(name, status);
            tc.set_classname(format!("kregress.{}", r.rec.scenario));
            // Any f64 (run.json is checked on load, records built in code are not).
            if let Ok(t) = Duration::try_from_secs_f64(runs.iter().map(|c| c.seconds).sum::<f64>()) {
                tc.set_time(t);
            }
            tc.add_property(Property::new("status", v.status.as_str()));
            if let Some(t) = v.timing {
                tc.add_property(Property::new("timing", t.as_str()));
            }
            if let Some(m) = v.stats.to_median {
                tc.add_property(Property::new("throughput", format!("{m:.2} {}", v.unit)));
            }
            suite.add_test_case(tc);
        }
        report.add_test_suite(suite);
    }
    report.to_string().map_err(|e| infra(format!("junit.xml: {e}")).because(e))
}
