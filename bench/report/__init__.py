"""Reports: leaderboard tables, plots, comparison grids, the HTML page, run comparisons."""
