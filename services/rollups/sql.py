"""The rollup statements. Every histogram key uses the sketch's mapping (see
``services.analytics.sketch``): ``ceil(ln(x) / LN_GAMMA)`` in double precision, the zero
bucket under ``ZERO_KEY``."""

from __future__ import annotations

from services.analytics.sketch import LN_GAMMA, MIN_VALUE

ZERO_KEY = -(2**31)  # sentinel key of the zero bucket in stored key arrays


def bucket(expr: str) -> str:
    """SQL for the histogram key of a non-negative double precision expression."""
    return (
        f"(case when ({expr}) < {MIN_VALUE!r} then {ZERO_KEY} "
        f"else ceil(ln({expr}) / {LN_GAMMA!r})::int end)"
    )


CALL_MODEL = "coalesce(c.response_model, c.request_model, '')"
CALL_REQUEST = "coalesce(c.request_id, encode(c.trace_id, 'hex'))"
CALL_LATENCY = "greatest(extract(epoch from c.ended_at - c.started_at)::float8, 0)"
TOKEN_COLUMNS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
_TOKEN_SUMS = ", ".join(f"sum({t})::bigint as {t}" for t in TOKEN_COLUMNS)
REQUEST_HISTOGRAMS = ("request_cost", "request_tokens", "calls_per_request")
_TOKEN_ADD = ", ".join(f"{t} = r.{t} + excluded.{t}" for t in TOKEN_COLUMNS)
_TOKENS = ", ".join(TOKEN_COLUMNS)


def _hist_merge(name: str, *, indent: str = "    ") -> str:
    """``ON CONFLICT`` assignment merging the incoming histogram ``name`` into the stored one."""
    return (
        f"{indent}({name}_keys, {name}_counts) = (\n"
        f"{indent}    select keys, counts from costline_hist_add(\n"
        f"{indent}        r.{name}_keys, r.{name}_counts, excluded.{name}_keys, "
        f"excluded.{name}_counts))"
    )


# Calls whose inserting transaction is in [from_xid, to_xid): committed and not yet rolled up.
CALLS_IN_RANGE = (
    "c.ingest_xid >= cast(:from_xid as text)::xid8 and c.ingest_xid < cast(:to_xid as text)::xid8"
)


def histogram_of(keys: str, weights: str | None = None) -> str:
    """A lateral subquery turning a list of histogram keys (with optional signed weights, one
    per key) into a sparse histogram ``(keys, counts)``: keys ascending, each once, zero
    counts left out. Grouping a cell's raw key list costs far less than grouping every call
    by (cell, key): most cells hold a handful of calls."""
    if weights is None:
        pairs, count = f"unnest({keys}) as u(k)", "count(*)"
    else:
        pairs, count = f"unnest({keys}, {weights}) as u(k, w)", "sum(w)"
    return f"""(
    select coalesce(array_agg(k order by k), '{{}}') as keys,
           coalesce(array_agg(n order by k), '{{}}') as counts
    from (select k, {count}::bigint as n from {pairs}
          where k is not null group by k having {count} <> 0) as b
)"""


# One scan of the new calls, grouped at both grains at once (grain 1: customer summed away);
# each cell keeps the raw list of its calls' histogram keys, turned into a sparse histogram
# per cell afterwards. Rollup writers serialize on the watermark lock, so cells are written in
# no particular order (no lock-order deadlock to avoid; sorting cost 5 %).
ADVANCE_CALL_CELLS = f"""
with cells as (
    select c.project_id, grouping(coalesce(c.customer, ''))::smallint as grain,
           date_trunc('hour', c.started_at, 'UTC') as hour,
           coalesce(c.provider, '') as provider, {CALL_MODEL} as model,
           coalesce(c.feature, '') as feature,
           coalesce(coalesce(c.customer, ''), '') as customer,
           coalesce(c.environment, '') as environment,
           count(*) as calls, count(*) - count(c.cost_usd) as unpriced_calls,
           {", ".join(f"sum(c.{t})::bigint as {t}" for t in TOKEN_COLUMNS)},
           coalesce(sum(c.cost_usd), 0) as cost_usd,
           array_agg({bucket("c.cost_usd::float8")}) filter (where c.cost_usd is not null)
               as cost_list,
           array_agg({bucket(CALL_LATENCY)}) as latency_list
    from llm_calls c
    where {CALLS_IN_RANGE}
    group by grouping sets (
        (c.project_id, date_trunc('hour', c.started_at, 'UTC'), coalesce(c.provider, ''),
         {CALL_MODEL}, coalesce(c.feature, ''), coalesce(c.customer, ''),
         coalesce(c.environment, '')),
        (c.project_id, date_trunc('hour', c.started_at, 'UTC'), coalesce(c.provider, ''),
         {CALL_MODEL}, coalesce(c.feature, ''), coalesce(c.environment, '')))
)
insert into call_rollups as r (
    project_id, grain, hour, provider, model, feature, customer, environment, calls,
    unpriced_calls, {_TOKENS}, cost_usd, call_cost_keys, call_cost_counts, latency_keys,
    latency_counts)
select t.project_id, t.grain, t.hour, t.provider, t.model, t.feature, t.customer,
       t.environment, t.calls, t.unpriced_calls, {", ".join("t." + x for x in TOKEN_COLUMNS)},
       t.cost_usd, ch.keys, ch.counts, lh.keys, lh.counts
from cells t
cross join lateral {histogram_of("t.cost_list")} as ch
cross join lateral {histogram_of("t.latency_list")} as lh
on conflict (project_id, grain, hour, provider, model, feature, customer, environment)
do update set
    calls = r.calls + excluded.calls,
    unpriced_calls = r.unpriced_calls + excluded.unpriced_calls,
    {_TOKEN_ADD},
    cost_usd = r.cost_usd + excluded.cost_usd,
{_hist_merge("call_cost")},
{_hist_merge("latency")}
"""

# The new calls hold an earlier first call than the stored request (ties: smallest span id).
_EARLIER = (
    "(excluded.first_started_at, excluded.first_span_id) < (r.first_started_at, r.first_span_id)"
)


# What a request contributes to request cells, as columns (``sign`` 1 adds, -1 retracts).
def contribution(q: str, sign: int) -> str:
    return f"""
    {q}.project_id, {sign} as sign, date_trunc('hour', {q}.first_started_at, 'UTC') as hour,
    date_trunc('day', {q}.first_started_at, 'UTC') as day, {q}.feature, {q}.customer,
    {q}.environment, {q}.calls::bigint as calls, {q}.unpriced_calls::bigint as unpriced_calls,
    {", ".join(f"{q}.{t}" for t in TOKEN_COLUMNS)}, {q}.cost_usd,
    case when {q}.priced_calls > 0 then {bucket(f"{q}.cost_usd::float8")} end as cost_key,
    {bucket(f"({q}.input_tokens + {q}.output_tokens)::float8")} as tokens_key,
    {bucket(f"{q}.calls::float8")} as calls_key"""


_REQUEST_HIST_MERGE = ",\n".join(_hist_merge(h, indent="        ") for h in REQUEST_HISTOGRAMS)


# Add signed contributions (CTE ``parts``) to request cells at three grains: 0: hour, every
# dimension; 1: hour, customers summed away; 2: UTC day, customers summed away (the "hour"
# column holds the day's start). Returns each changed cell's request count.
_REQUEST_CELLS = f"""
cells as (
    select project_id,
           (case when grouping(hour) = 1 then 2 else grouping(customer) end)::smallint as grain,
           coalesce(hour, day) as hour, feature, coalesce(customer, '') as customer, environment,
           sum(sign)::bigint as requests, sum(sign * calls)::bigint as calls,
           sum(sign * unpriced_calls)::bigint as unpriced_calls,
           {", ".join(f"sum(sign * {t})::bigint as {t}" for t in TOKEN_COLUMNS)},
           sum(sign * cost_usd) as cost_usd,
           array_agg(cost_key) as cost_list, array_agg(tokens_key) as tokens_list,
           array_agg(calls_key) as calls_list, array_agg(sign) as signs
    from parts
    group by grouping sets ((project_id, hour, feature, customer, environment),
                            (project_id, hour, feature, environment),
                            (project_id, day, feature, environment))
),
changed_cells as (
    insert into request_rollups as r (
        project_id, grain, hour, feature, customer, environment, requests, calls,
        unpriced_calls, {_TOKENS}, cost_usd, request_cost_keys, request_cost_counts,
        request_tokens_keys, request_tokens_counts, calls_per_request_keys,
        calls_per_request_counts)
    select t.project_id, t.grain, t.hour, t.feature, t.customer, t.environment, t.requests,
           t.calls, t.unpriced_calls, {", ".join("t." + x for x in TOKEN_COLUMNS)}, t.cost_usd,
           cb.keys, cb.counts, tb.keys, tb.counts, nb.keys, nb.counts
    from cells t
    cross join lateral {histogram_of("t.cost_list", "t.signs")} as cb
    cross join lateral {histogram_of("t.tokens_list", "t.signs")} as tb
    cross join lateral {histogram_of("t.calls_list", "t.signs")} as nb
    on conflict (project_id, grain, hour, feature, customer, environment) do update set
        requests = r.requests + excluded.requests,
        calls = r.calls + excluded.calls,
        unpriced_calls = r.unpriced_calls + excluded.unpriced_calls,
        {_TOKEN_ADD},
        cost_usd = r.cost_usd + excluded.cost_usd,
{_REQUEST_HIST_MERGE}
    returning r.requests
)"""

# The new calls hold an earlier first call than the stored request (ties: smallest span id).
_EARLIER = (
    "(excluded.first_started_at, excluded.first_span_id) < (r.first_started_at, r.first_span_id)"
)

# Fold new calls into their requests' running sums, in one pass grouped by request (the
# attribution of the earliest call, ties: smallest span id, from a single ordered aggregate;
# the model mix from the request's list of models). A request that was rolled up (not in
# request_queue) has its contribution retracted from the request cells first, computed from
# its row as it stands (the statement's snapshot); every changed request is queued to settle.
# Returns how many request cells the retractions left empty.
ADVANCE_REQUESTS = f"""
with sums as (
    select c.project_id, {CALL_REQUEST} as request_id, min(c.started_at) as first_started_at,
           (array_agg(
                row(c.span_id, coalesce(c.feature, ''), coalesce(c.customer, ''),
                    coalesce(c.environment, ''), c.user_id, c.service_name)::costline_first_call
                order by c.started_at, c.span_id))[1] as first,
           max(c.ended_at) as last_ended_at, count(*) as calls, count(c.cost_usd) as priced_calls,
           count(*) - count(c.cost_usd) as unpriced_calls,
           {", ".join(f"sum(c.{t})::bigint as {t}" for t in TOKEN_COLUMNS)},
           coalesce(sum(c.cost_usd), 0) as cost_usd, array_agg({CALL_MODEL}) as models,
           max(c.ingested_at) as last_ingested_at
    from llm_calls c
    where {CALLS_IN_RANGE}
    group by 1, 2
),
parts as (
    select {contribution("r", -1)}
    from sums s
    -- a probe of the primary keys per changed request (the LIMIT keeps the planner from
    -- turning it into a scan of the whole table): most requests are new, and the tables
    -- grow with every request ever seen
    cross join lateral (
        select * from requests r
        where r.project_id = s.project_id and r.request_id = s.request_id
              and not exists (select from request_queue q
                              where q.project_id = r.project_id and q.request_id = r.request_id)
        limit 1
    ) as r
),
{_REQUEST_CELLS.strip()},
upserted as (
    insert into requests as r (
        project_id, request_id, first_started_at, first_span_id, last_ended_at, calls,
        priced_calls, unpriced_calls, {_TOKENS}, cost_usd, feature, customer, environment,
        user_id, service_name, model_mix, last_ingested_at)
    select s.project_id, s.request_id, s.first_started_at, (s.first).span_id, s.last_ended_at,
           s.calls, s.priced_calls, s.unpriced_calls, {", ".join("s." + x for x in TOKEN_COLUMNS)},
           s.cost_usd, (s.first).feature, (s.first).customer, (s.first).environment,
           (s.first).user_id, (s.first).service_name, m.model_mix, s.last_ingested_at
    from sums s
    cross join lateral (
        select jsonb_object_agg(model, n) as model_mix
        from (select model, count(*) as n from unnest(s.models) as u(model) group by model) as m
    ) as m
    order by 1, 2
    on conflict (project_id, request_id) do update set
        -- attribution comes from the request's earliest call (ties: smallest span id)
        feature = case when {_EARLIER} then excluded.feature else r.feature end,
        customer = case when {_EARLIER} then excluded.customer else r.customer end,
        environment = case when {_EARLIER} then excluded.environment else r.environment end,
        user_id = case when {_EARLIER} then excluded.user_id else r.user_id end,
        service_name = case when {_EARLIER} then excluded.service_name else r.service_name end,
        first_span_id = case when {_EARLIER} then excluded.first_span_id else r.first_span_id end,
        first_started_at = least(r.first_started_at, excluded.first_started_at),
        last_ended_at = greatest(r.last_ended_at, excluded.last_ended_at),
        calls = r.calls + excluded.calls,
        priced_calls = r.priced_calls + excluded.priced_calls,
        unpriced_calls = r.unpriced_calls + excluded.unpriced_calls,
        {_TOKEN_ADD},
        cost_usd = r.cost_usd + excluded.cost_usd,
        model_mix = costline_counts_add(r.model_mix, excluded.model_mix),
        last_ingested_at = greatest(r.last_ingested_at, excluded.last_ingested_at)
    returning r.project_id, r.request_id, r.last_ingested_at
),
queued as (
    insert into request_queue as q (project_id, request_id, last_ingested_at)
    select project_id, request_id, last_ingested_at from upserted
    order by 1, 2
    on conflict (project_id, request_id) do update
    set last_ingested_at = greatest(q.last_ingested_at, excluded.last_ingested_at)
)
select count(*) from changed_cells where requests = 0
"""

# Settle requests quiet for the settle window: take them off the queue and add what each
# contributes now to the request cells (what it contributed before, if anything, was retracted
# when its late call was folded in). Returns how many request cells changed.
SETTLE_REQUESTS = f"""
with due as (
    -- by row address: no join against the whole queue
    delete from request_queue q
    where q.ctid = any(array(select ctid from request_queue
                             where last_ingested_at < :cutoff
                             order by last_ingested_at
                             limit :batch))
    returning q.project_id, q.request_id
),
parts as (
    select {contribution("r", 1)}
    from due
    -- a primary-key probe per due request, not a scan of every request ever seen
    cross join lateral (
        select * from requests r
        where r.project_id = due.project_id and r.request_id = due.request_id
        limit 1
    ) as r
),
{_REQUEST_CELLS.strip()}
select count(*) from changed_cells
"""

# Cells left empty by retractions (a request that moved hour or dimensions).
DROP_EMPTY_REQUEST_CELLS = "delete from request_rollups where requests = 0"
