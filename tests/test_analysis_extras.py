"""A worker's task for one threat also takes other threats still queued (issue 22, target 3):
single triggers arriving in a burst are analysed in batches, and their own tasks, arriving later,
find them running or analysed and do nothing (docs/agents.md, "How a threat travels").

The tasks are called as a worker runs them (`task(...)`: not eager, so the worker's claim rules
apply), on the real database; the PostgreSQL tests claim from two connections at once."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from agents import tasks
from agents.models import AgentRun
from tests import factories
from threats import services
from threats.choices import AnalysisStatus, EventType
from threats.models import Threat, ThreatEvent

pytestmark = pytest.mark.django_db


def _queued(customer, count, **fields):
    return [factories.make_threat(customer=customer, analyse=False, title=f"alert {i}", **fields) for i in range(count)]


def _state(threats):
    return [Threat.objects.get(pk=t.pk).analysis_status for t in threats]


def _runs(threats):
    return sorted(AgentRun.objects.filter(threat__in=threats).values_list("threat_id", "kind", "id", "finished_at"))


def _analyzed_events(threat):
    return ThreatEvent.objects.filter(threat=threat, type=EventType.ANALYZED).count()


def test_a_worker_task_analyses_the_queued_threats_with_its_own_and_their_tasks_then_do_nothing(customer):
    waiting = _queued(customer, 4)

    tasks.analyze_threat(str(waiting[2].pk))

    assert _state(waiting) == [AnalysisStatus.COMPLETED] * 4
    assert all(AgentRun.objects.filter(threat=t).count() == 5 for t in waiting)
    assert [_analyzed_events(t) for t in waiting] == [1, 1, 1, 1]  # the live event of each, once
    runs = _runs(waiting)
    for threat in waiting:  # their own tasks arrive: nothing is analysed again
        tasks.analyze_threat(str(threat.pk))
    assert _runs(waiting) == runs
    assert [_analyzed_events(t) for t in waiting] == [1, 1, 1, 1]


def test_it_takes_at_most_a_batch_oldest_first(customer, settings):
    settings.AGENTS_BATCH_SIZE = 3
    waiting = _queued(customer, 5)
    stamp = timezone.now() - timedelta(seconds=30)
    for age, threat in enumerate(waiting):  # waiting[0] was queued last, waiting[4] first
        Threat.objects.filter(pk=threat.pk).update(updated_at=stamp + timedelta(seconds=5 - age))

    tasks.analyze_threat(str(waiting[0].pk))

    assert _state(waiting) == [AnalysisStatus.COMPLETED, AnalysisStatus.QUEUED, AnalysisStatus.QUEUED,
                               AnalysisStatus.COMPLETED, AnalysisStatus.COMPLETED]


def test_with_nothing_else_queued_a_task_analyses_its_own_threat_alone(customer):
    done = factories.make_threat(customer=customer)
    [alone] = _queued(customer, 1)
    runs = _runs([done])

    tasks.analyze_threat(str(alone.pk))

    assert _state([alone, done]) == [AnalysisStatus.COMPLETED, AnalysisStatus.COMPLETED]
    assert _runs([done]) == runs and _analyzed_events(done) == 1


def test_a_running_threat_is_never_taken_and_its_own_task_leaves_it_to_the_worker_that_holds_it(customer):
    held, *waiting = _queued(customer, 3)
    services.start_analyses([held.pk])  # another worker is analysing it

    tasks.analyze_threat(str(waiting[0].pk))

    assert _state([held, *waiting]) == [AnalysisStatus.RUNNING, AnalysisStatus.COMPLETED, AnalysisStatus.COMPLETED]
    assert not AgentRun.objects.filter(threat=held).exists()
    tasks.analyze_threat(str(held.pk))  # its own task, while the other worker still holds it
    assert _state([held]) == [AnalysisStatus.RUNNING]
    assert not AgentRun.objects.filter(threat=held).exists() and _analyzed_events(held) == 0


def test_a_threat_whose_worker_died_is_taken_by_its_redelivered_task_but_never_as_an_extra(customer):
    died, *waiting = _queued(customer, 2)
    services.start_analyses([died.pk])
    Threat.objects.filter(pk=died.pk).update(updated_at=timezone.now() - tasks.STALE_AFTER - timedelta(seconds=1))

    tasks.analyze_threat(str(waiting[0].pk))
    assert _state([died, *waiting]) == [AnalysisStatus.RUNNING, AnalysisStatus.COMPLETED]

    tasks.analyze_threat(str(died.pk))  # redelivered after the visibility timeout
    assert _state([died]) == [AnalysisStatus.COMPLETED] and _analyzed_events(died) == 1


def test_the_sweeper_queues_a_stale_running_analysis_again_and_a_worker_task_takes_it(customer, settings):
    settings.AGENTS_IN_THREAD = False
    stuck, other = _queued(customer, 2)
    services.start_analyses([stuck.pk])
    Threat.objects.filter(pk=stuck.pk).update(updated_at=timezone.now() - timedelta(minutes=10))
    submitted = []
    # The broker is not the subject here: what the sweeper would publish is run as a worker runs it.
    settings.CELERY_TASK_ALWAYS_EAGER = False
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tasks, "_submit_all", submitted.extend)
        assert tasks.requeue_stale_analyses() == 1
    assert submitted == [str(stuck.pk)] and _state([stuck]) == [AnalysisStatus.QUEUED]

    tasks.analyze_threat(str(stuck.pk))
    assert _state([stuck, other]) == [AnalysisStatus.COMPLETED, AnalysisStatus.COMPLETED]


def test_eager_tasks_and_an_llm_take_no_extras(customer, settings):
    first, second, third = _queued(customer, 3)

    tasks.analyze_threat.delay(str(first.pk))  # embedded mode: eager
    assert _state([first, second, third]) == [AnalysisStatus.COMPLETED, AnalysisStatus.QUEUED, AnalysisStatus.QUEUED]

    settings.LLM_BASE_URL, settings.LLM_MODEL = "http://127.0.0.1:9/v1", "model"  # refused: the narrative fails
    tasks.analyze_threat(str(second.pk))
    assert _state([second, third]) == [AnalysisStatus.COMPLETED, AnalysisStatus.QUEUED]


def test_extras_of_other_customers_are_analysed_with_their_own_customer(acme, globex):
    mine = factories.make_threat(customer=acme, analyse=False)
    theirs = factories.make_threat(customer=globex, analyse=False)
    factories.make_infra_event(customer=globex, minutes_ago=5, kind="deployment", service="api")

    tasks.analyze_threat(str(mine.pk))

    mine, theirs = Threat.objects.get(pk=mine.pk), Threat.objects.get(pk=theirs.pk)
    assert "for Acme" in mine.executive_summary and "for Globex" in theirs.executive_summary
    devops = {run.threat_id: run.data["infra_events"] for run in AgentRun.objects.filter(kind="devops")}
    assert devops[mine.pk] == [] and len(devops[theirs.pk]) == 1


def test_a_failed_extra_is_recorded_failed_and_its_own_task_analyses_it_again(customer, monkeypatch):
    from agents import coordinator

    own, extra = _queued(customer, 2)
    decide = coordinator.decide
    monkeypatch.setattr(coordinator, "decide", lambda t, *found: 1 / 0 if t.pk == extra.pk else decide(t, *found))

    with pytest.raises(ZeroDivisionError):
        tasks.analyze_threat(str(own.pk))
    assert _state([own, extra]) == [AnalysisStatus.COMPLETED, AnalysisStatus.FAILED]

    monkeypatch.undo()
    tasks.analyze_threat(str(extra.pk))  # its own task, behind in the queue
    assert _state([extra]) == [AnalysisStatus.COMPLETED] and _analyzed_events(extra) == 1


def _run_as_delivered(task, *args, task_id, redelivered=False):
    """The task as a worker runs a message: with its id, and flagged as Redis flags a message
    given back when the worker process running it died (CELERY_TASK_REJECT_ON_WORKER_LOST)."""
    task.push_request(id=task_id, delivery_info={"redelivered": redelivered}, retries=0, is_eager=False)
    try:
        return task.run(*args)
    finally:
        task.pop_request()


class _Killed(BaseException):
    """The worker process dying mid-analysis: nothing after it runs, nothing is recorded."""


def test_a_task_whose_worker_died_takes_its_extras_again_when_it_is_redelivered(customer, monkeypatch):
    from agents import coordinator

    own, *extras = _queued(customer, 3)
    monkeypatch.setattr(coordinator, "decide", lambda *args: (_ for _ in ()).throw(_Killed()))
    with pytest.raises(_Killed):
        _run_as_delivered(tasks.analyze_threat, str(own.pk), task_id="task-1")
    monkeypatch.undo()
    assert _state([own, *extras]) == [AnalysisStatus.RUNNING] * 3

    for extra in extras:  # their own tasks: a first delivery leaves them to the task that took them
        _run_as_delivered(tasks.analyze_threat, str(extra.pk), task_id=f"task-of-{extra.pk}")
    assert _state(extras) == [AnalysisStatus.RUNNING] * 2

    _run_as_delivered(tasks.analyze_threat, str(own.pk), task_id="task-1", redelivered=True)
    assert _state([own, *extras]) == [AnalysisStatus.COMPLETED] * 3
    assert [_analyzed_events(t) for t in (own, *extras)] == [1, 1, 1]


# --- PostgreSQL: two workers claiming at once ----------------------------------------------------------

postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="FOR UPDATE SKIP LOCKED: PostgreSQL")


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_claims_at_once_never_take_the_same_extra(customer):
    waiting = _queued(customer, 10)
    own = [waiting.pop(0), waiting.pop()]  # the second, the newest: not among the first's four oldest
    first_holds, release = threading.Event(), threading.Event()
    taken = {}

    def claim(name, threat, hold):
        try:
            with transaction.atomic():
                taken[name] = {t.pk for t in services.start_analyses([threat.pk], extras=4)}
                if hold:  # the first worker's claim is not committed yet when the second claims
                    first_holds.set()
                    assert release.wait(10)
        finally:
            connections.close_all()

    first = threading.Thread(target=claim, args=("first", own[0], True))
    first.start()
    assert first_holds.wait(10)
    second = threading.Thread(target=claim, args=("second", own[1], False))
    second.start()
    second.join(10)
    assert not second.is_alive(), "the second claim waited for the first one's rows"
    release.set()
    first.join(10)

    assert own[0].pk in taken["first"] and own[1].pk in taken["second"]
    assert not taken["first"] & taken["second"]
    assert len(taken["first"]) == len(taken["second"]) == 5
    assert set(_state(waiting)) == {AnalysisStatus.RUNNING}


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_many_claims_racing_take_each_queued_threat_once(customer):
    waiting = _queued(customer, 40)
    start, taken = threading.Barrier(4), []

    def claim(index):
        try:
            start.wait(10)
            for own in waiting[index::4][:2]:
                taken.extend(t.pk for t in services.start_analyses([own.pk], extras=6,
                                                                   running_before=timezone.now() - tasks.STALE_AFTER))
        finally:
            connections.close_all()

    workers = [threading.Thread(target=claim, args=(index,)) for index in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert len(taken) == len(set(taken))  # never one threat twice
    assert set(_state(waiting)) <= {AnalysisStatus.RUNNING, AnalysisStatus.QUEUED}
    assert Threat.objects.filter(analysis_status=AnalysisStatus.RUNNING).count() == len(taken)
