# The independent reference of scoring.lmm: R's lmerTest on the same data.
# Usage: Rscript lmertest_fit.R spec.json  (spec: data, formula, levels) -> JSON on stdout.
suppressMessages({
  library(lmerTest)
  library(jsonlite)
})
spec <- fromJSON(commandArgs(trailingOnly = TRUE)[1])
d <- read.csv(spec$data, stringsAsFactors = FALSE)
d$valence <- factor(d$valence, levels = c("bad", "good"))
for (f in names(spec$levels)) d[[f]] <- factor(d[[f]], levels = spec$levels[[f]])
d$participant <- factor(d$participant)
m <- lmer(as.formula(spec$formula), data = d, REML = TRUE)
s <- summary(m, ddf = "Satterthwaite")$coefficients
L <- diag(nrow(s))
ci <- t(sapply(seq_len(nrow(s)), function(i) {
  r <- contest1D(m, L[i, ], confint = TRUE, level = 0.95)
  c(r$lower, r$upper)
}))
out <- list(
  coefficients = data.frame(
    term = rownames(s),
    estimate = s[, "Estimate"],
    std_error = s[, "Std. Error"],
    df = s[, "df"],
    t_value = s[, "t value"],
    p_value = s[, "Pr(>|t|)"],
    ci_low = ci[, 1],
    ci_high = ci[, 2]
  ),
  sigma = sigma(m),
  theta = unname(getME(m, "theta")),
  reml = unname(REMLcrit(m)),
  singular = isSingular(m)
)
cat(toJSON(out, digits = NA, auto_unbox = TRUE))
