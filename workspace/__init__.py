"""The site shell: pages composed from several apps (home, project runs, run, compare, team
and settings pages, the team's audit log). Features never import it."""
