//! The load-test harness (`tandem-bench`) lands here with the harness issue.
