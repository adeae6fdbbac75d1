-- The optimizer's decisions per link: what it saw, what it chose, and why (issue: links).
-- Written every optimizer interval for every busy link; pruned after `retention` by the daemon.
create table link_decisions (
  id              bigint generated always as identity primary key,
  link_id         bigint not null references links (id) on delete cascade,
  at              timestamptz not null default now(),
  previous_limit  integer not null,
  limit_active    integer not null,
  reason          text not null,
  -- the LinkObservation the decision was made from
  inputs          jsonb not null
);
create index link_decisions_link_at on link_decisions (link_id, at desc);
create index link_decisions_at on link_decisions (at);
