"""The scheduler's composition root: informers, controllers, gRPC servers, probes and leader election.

Every replica runs the informers and serves `Credentials` (stateless reads, design §2); only the Lease holder
runs the controllers. On gaining leadership the controllers start with fresh queues and every known job is
queued once; on losing it they stop at once.
"""

from __future__ import annotations

import logging
import random
import threading

import grpc

from services.scheduler import (
    credentials_servicer,
    dispatcher,
    expectations,
    jobs_servicer,
    listreconciler,
    reconciler,
    view,
)
from services.scheduler.metrics import ControllerQueueMetrics, SchedulerMetrics
from services.scheduler.settings import SchedulerSettings
from services.scheduler.view import ClusterView
from services.shared import leadership, observability
from services.shared.auth.interceptor import AuthInterceptor
from services.shared.auth.policy import PolicyTable
from services.shared.auth.subjectaccess import SubjectAccessReviewer
from services.shared.auth.tokenreview import TokenReviewAuthenticator
from services.shared.clock import Clock, SystemClock
from services.shared.gen.prepull.v1 import credentials_pb2_grpc, jobs_pb2_grpc
from services.shared.kube import client, controller, events, informer, kubeapi, resources, workqueue
from services.shared.rpc import server as rpc_server
from services.shared.rpc.health import Health
from services.shared.rpc.status import DEFAULT_TABLE, StatusInterceptor
from services.shared.telemetry import instrumentation

__all__ = ["SchedulerApp"]

log = logging.getLogger(__name__)


class SchedulerApp:
    """One scheduler replica. `start()` returns once caches are synced and servers listen; `stop()` undoes it."""

    def __init__(
        self,
        settings: SchedulerSettings,
        api_client: client.ApiClient,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock or SystemClock()
        self.api = kubeapi.KubeApi(api_client, settings=client.ClientSettings(user_agent="prepull-scheduler"))
        namespace = settings.watch_namespace or None
        self.view = ClusterView(
            jobs=informer.Informer(self.api, resources.IMAGE_PULL_JOBS, namespace=namespace),
            list_jobs=informer.Informer(self.api, resources.IMAGE_LIST_PULL_JOBS, namespace=namespace),
            node_images=view.node_image_informer(self.api),
            pods=informer.Informer(self.api, resources.PODS, namespace=namespace, field_selector="spec.nodeName!="),
        )
        self.metrics = SchedulerMetrics()
        self.expectations = expectations.Expectations(settings.expectation_timeout_seconds)
        self.recorder = events.EventRecorder(
            self.api, component="prepull-scheduler", instance=settings.leader_election.identity
        )
        self._lock = threading.Lock()
        self._job_controller: controller.Controller[str] | None = None
        self._list_controller: controller.Controller[str] | None = None
        self.dispatcher = dispatcher.Dispatcher(self.view, self.expectations, self._enqueue_job, self._enqueue_list_job)
        self.job_reconciler = reconciler.JobReconciler(
            api=self.api,
            view=self.view,
            dispatcher=self.dispatcher,
            expectations=self.expectations,
            recorder=self.recorder,
            metrics=self.metrics,
            settings=settings,
            clock=self._clock,
            rng=rng,
        )
        self.dispatcher.capacity_waiters = self.job_reconciler.capacity_waiters
        self.list_reconciler = listreconciler.ListJobReconciler(
            api=self.api,
            view=self.view,
            expectations=self.expectations,
            recorder=self.recorder,
            metrics=self.metrics,
            clock=self._clock,
            expectation_requeue_seconds=settings.nodeimage_expectation_requeue_seconds,
            expectation_timeout_seconds=settings.expectation_timeout_seconds,
        )
        self.health = Health()
        servicer = credentials_servicer.CredentialsServicer(
            api=self.api, view=self.view, recorder=self.recorder, metrics=self.metrics
        )
        reviewer = SubjectAccessReviewer(api_client)
        jobs = jobs_servicer.JobsServicer(api=self.api, reviewer=reviewer)
        policies = PolicyTable(
            {
                **credentials_servicer.credentials_rules(settings.puller_username),
                **jobs_servicer.jobs_policy(settings.jobs_audience),
            }
        )
        self.grpc_server, self.grpc_port = rpc_server.create_server(
            settings.grpc_address,
            [
                (credentials_pb2_grpc.add_CredentialsServicer_to_server, servicer),
                (jobs_pb2_grpc.add_JobsServicer_to_server, jobs),
            ],
            health=self.health,
            serving=False,
            interceptors=[
                instrumentation.server_interceptor(),
                AuthInterceptor(policies, authenticator=TokenReviewAuthenticator(api_client), reviewer=reviewer),
                StatusInterceptor(
                    DEFAULT_TABLE.extended(
                        {
                            jobs_servicer.UidPreconditionFailed: grpc.StatusCode.FAILED_PRECONDITION,
                            jobs_servicer.MissingField: grpc.StatusCode.INVALID_ARGUMENT,
                        }
                    )
                ),
            ],
        )
        self.probes = observability.ObservabilityServer(
            metrics_address=settings.metrics_address,
            health_address=settings.health_address,
            readiness=self._ready,
            registry=self.metrics.registry,
        )
        self._stopped = False
        self._elector = leadership.build_elector(
            self.api,
            settings.leader_election,
            on_started_leading=self.start_leading,
            on_stopped_leading=self.stop_leading,
        )

    # --- life cycle ------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Sync caches, start serving, and campaign for leadership (or lead at once without election)."""
        self.dispatcher.register()
        self.recorder.start()
        for each in self.view.informers:
            each.start()
        for each in self.view.informers:
            timeout = self.settings.cache_sync_timeout_seconds
            if not each.wait_for_sync(timeout):
                raise TimeoutError(f"{each!r} did not sync within {timeout:.0f}s (--cache-sync-timeout)")
        self.probes.start()
        self.grpc_server.start()
        self.health.set_serving(True)
        if self._elector is not None:
            self._elector.start()
        else:
            self.start_leading()
        log.info("scheduler started; gRPC on port %d", self.grpc_port)

    def stop(self) -> None:
        """Stop leading, serving and watching; calling it again does nothing."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        if self._elector is not None:
            self._elector.stop()
        self.stop_leading()
        rpc_server.stop_gracefully(self.grpc_server, grace=2.0, health=self.health)
        self.probes.stop()
        for each in self.view.informers:
            each.stop()
        self.recorder.stop()

    def start_leading(self) -> None:
        """Run the controllers and queue every known object once."""
        with self._lock:
            if self._job_controller is not None:
                return
            self._job_controller = controller.Controller(
                "imagepulljob",
                self.job_reconciler.reconcile,
                workers=self.settings.job_workers,
                queue=workqueue.WorkQueue(metrics=ControllerQueueMetrics(self.metrics, "imagepulljob")),
            )
            self._list_controller = controller.Controller(
                "imagelistpulljob",
                self.list_reconciler.reconcile,
                workers=self.settings.list_job_workers,
                queue=workqueue.WorkQueue(metrics=ControllerQueueMetrics(self.metrics, "imagelistpulljob")),
            )
            self._job_controller.start()
            self._list_controller.start()
        self.metrics.leader.set(1)
        job_keys = self.view.jobs.informer.store.keys()
        list_job_keys = self.view.list_jobs.informer.store.keys()
        for key in job_keys:
            self._enqueue_job(key)
        for key in list_job_keys:
            self._enqueue_list_job(key)
        log.info("leading: controllers started")

    def stop_leading(self) -> None:
        """Stop the controllers (their queues are discarded; the next leader term starts afresh)."""
        with self._lock:
            running = [c for c in (self._job_controller, self._list_controller) if c is not None]
            self._job_controller = self._list_controller = None
        for each in running:
            each.stop()
        self.metrics.leader.set(0)

    @property
    def leading(self) -> bool:
        """True while the controllers run."""
        return self._job_controller is not None

    def _ready(self) -> bool:
        return all(each.has_synced() for each in self.view.informers)

    def _enqueue_job(self, key: str) -> None:
        running = self._job_controller
        if running is not None:
            running.queue.add(key)

    def _enqueue_list_job(self, key: str) -> None:
        running = self._list_controller
        if running is not None:
            running.queue.add(key)
