// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {MAX_CREDENTIALS, ModelTokens} from "./ModelTokens.sol";
import {PullPayments} from "./PullPayments.sol";

/// @title Training runs and their epoch settlement.
/// @notice A designer opens a run with a stake; providers join; the coordinator posts one Merkle
/// root per epoch of *cumulative* risk-adjusted units per contributor (OpenZeppelin's standard tree,
/// leaves (address, uint256)). A root settles once its challenge window has passed without a
/// veto. Ownership is minted from the final root only (the settled one training finished on), to
/// the leaf's account, `cumulative − claimed`: cumulative units make it pay everything earlier
/// roots credited, and a contributor an earlier root credited with more than the final one cannot
/// claim the difference.
///
/// Stake: returned to the designer when the run is trained. When a run is abandoned, no root can
/// be posted any more, but those already posted still settle or get vetoed. Once every one of
/// them is past its window, the stake goes, pro rata to their units, to the contributors of the
/// latest root that was not vetoed; only if there is none (no root, or all vetoed) does it go back
/// to the designer. So abandoning while a root is in its window neither takes the stake back from
/// contributors who did the work nor lets it be paid twice. The registry's balance always covers
/// everything it owes: Σ withdrawable + Σ over runs of (stake − stakePaid).
///
/// Reentrancy: every function that calls out to another account (a receiver hook when ownership is
/// minted, an ETH transfer) is `nonReentrant` and writes its state before the call. The others
/// only write this contract's storage (finishTraining calls the tokens contract, which calls no
/// one back during activation).
contract RunRegistry is AccessControl, ReentrancyGuard, PullPayments {
    bytes32 public constant COORDINATOR_ROLE = keccak256("COORDINATOR_ROLE");
    bytes32 public constant VETO_ROLE = keccak256("VETO_ROLE");
    uint16 public constant BPS = 10_000;
    /// The designer's share of ownership can never exceed 20 %.
    uint16 public constant MAX_DESIGNER_BPS = 2_000;
    uint64 public constant MAX_CHALLENGE_WINDOW = 30 days;
    /// No deployment may accept a window under 2 s: a root must stay vetoable in at least one block
    /// after the one that posted it, even on a chain with a block every second.
    uint64 public constant MIN_CHALLENGE_WINDOW_FLOOR = 2;
    /// Largest credential supply a run may open with: supply × 1e18 (the re-issue accumulator's
    /// fixed point) stays under 2^188, so activation and a practically unbounded number of
    /// re-issues can never overflow (ModelTokens.MAX_CREDENTIAL_SUPPLY).
    uint256 public constant MAX_CREDENTIAL_SUPPLY = MAX_CREDENTIALS;
    /// Largest compute target or root total (units): the designer share and every stake share are
    /// computed as products of it, which must not overflow, or the run could never finish.
    uint256 public constant MAX_UNITS = type(uint128).max;
    /// Longest coordinator or corpus URL a run lists: a volunteer's app reads every open run's.
    uint256 public constant MAX_URL_BYTES = 256;
    /// The shortest challenge window a run may open with on this deployment (set for its chain's
    /// block time; at least MIN_CHALLENGE_WINDOW_FLOOR).
    uint64 public immutable minChallengeWindow;

    enum State {
        None,
        Open,
        Training,
        Trained,
        Abandoned
    }

    /// Where an abandoned run's stake goes (see the contract's notice).
    enum StakeTo {
        Undecided, // not abandoned, or a root posted before it still inside its window
        Designer,
        Contributors
    }

    struct Run {
        address designer;
        State state;
        uint16 designerBps;
        uint64 challengeWindow;
        uint256 stake;
        uint256 computeTarget; // risk-adjusted units the final root must reach
        uint256 credentialSupply;
        uint256 providers;
        uint256 epochs; // roots posted, vetoed ones included
        uint256 settledEpoch; // Trained: the final root, the only one ownership is claimed from
        bool designerPaid;
        bytes32 modelHash; // commits to the model spec the swarm trains
        uint256 stakePaid; // of the stake, credited for withdrawal so far (designer or contributors)
    }

    /// Where a volunteer finds a run: its coordinator (a wss:// URL the coordinator announces, again
    /// after it moves) and its training text (a URL and the SHA-256 a peer checks it against).
    struct Listing {
        string coordinator;
        string corpusUrl;
        bytes32 corpusHash;
    }

    struct Epoch {
        bytes32 root;
        uint256 total; // sum of the cumulative units in the tree
        uint64 claimableAt;
        bool vetoed;
    }

    ModelTokens public immutable tokens;
    uint256 public runCount;
    mapping(uint256 runId => Run) public runs;
    mapping(uint256 runId => mapping(uint256 epoch => Epoch)) public epochs;
    mapping(uint256 runId => mapping(address provider => bool)) public joined;
    mapping(uint256 runId => mapping(address account => uint256)) public claimed;
    mapping(uint256 runId => mapping(address account => bool)) public stakeClaimed;
    mapping(address account => uint256) public withdrawable;
    mapping(uint256 runId => Listing) public listings;

    event RunOpened(uint256 indexed runId, address indexed designer, uint256 stake, uint256 computeTarget, uint16 designerBps, uint256 credentialSupply, uint64 challengeWindow, bytes32 modelHash);
    event Joined(uint256 indexed runId, address indexed provider);
    event CorpusListed(uint256 indexed runId, string corpusUrl, bytes32 corpusHash);
    event CoordinatorAnnounced(uint256 indexed runId, string url);
    event TrainingStarted(uint256 indexed runId);
    event EpochPosted(uint256 indexed runId, uint256 indexed epoch, bytes32 root, uint256 total, uint64 claimableAt);
    event EpochVetoed(uint256 indexed runId, uint256 indexed epoch);
    event Trained(uint256 indexed runId, uint256 indexed epoch, uint256 ownershipTotal, uint256 designerUnits);
    /// `stakeTo` Undecided: a root posted before is still in its window (see stakeOutcome).
    event Abandoned(uint256 indexed runId, StakeTo stakeTo, uint256 epoch);
    event StakeRefunded(uint256 indexed runId, address indexed designer, uint256 amount);
    event OwnershipClaimed(uint256 indexed runId, address indexed account, uint256 indexed epoch, uint256 amount);
    event DesignerShareClaimed(uint256 indexed runId, address indexed designer, uint256 amount);
    event StakeShareClaimed(uint256 indexed runId, address indexed account, uint256 amount);
    event Withdrawn(address indexed account, uint256 amount);

    error UnknownRun(uint256 runId);
    error WrongState(uint256 runId, State state);
    error BadParameter(string what);
    error AlreadyJoined(uint256 runId, address provider);
    error NotJoined(uint256 runId, address account);
    error NotDesigner(uint256 runId);
    error UnknownEpoch(uint256 runId, uint256 epoch);
    error EpochNotClaimable(uint256 runId, uint256 epoch);
    error ChallengeWindowOver(uint256 runId, uint256 epoch);
    error TotalDecreased(uint256 previous, uint256 posted);
    error TargetNotReached(uint256 total, uint256 target);
    error InvalidProof();
    error StakeExceeded(uint256 runId);
    error StakeUndecided(uint256 runId, uint64 decidedAt);

    constructor(address admin, ModelTokens tokens_, uint64 minChallengeWindow_) {
        if (minChallengeWindow_ < MIN_CHALLENGE_WINDOW_FLOOR || minChallengeWindow_ > MAX_CHALLENGE_WINDOW) {
            revert BadParameter("minChallengeWindow");
        }
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        tokens = tokens_;
        minChallengeWindow = minChallengeWindow_;
    }

    // ---- lifecycle -----------------------------------------------------------------------------

    function openRun(uint256 computeTarget, uint16 designerBps, uint256 credentialSupply, uint64 challengeWindow, bytes32 modelHash)
        external
        payable
        returns (uint256 runId)
    {
        if (msg.value == 0) revert BadParameter("stake");
        if (computeTarget == 0 || computeTarget > MAX_UNITS) revert BadParameter("computeTarget");
        if (designerBps > MAX_DESIGNER_BPS) revert BadParameter("designerBps");
        if (credentialSupply == 0 || credentialSupply > MAX_CREDENTIAL_SUPPLY) revert BadParameter("credentialSupply");
        // A window of 0 (or under a block) would let a root settle before anyone could veto it.
        if (challengeWindow < minChallengeWindow || challengeWindow > MAX_CHALLENGE_WINDOW) revert BadParameter("challengeWindow");
        runId = ++runCount;
        Run storage r = runs[runId];
        r.designer = msg.sender;
        r.state = State.Open;
        r.designerBps = designerBps;
        r.challengeWindow = challengeWindow;
        r.stake = msg.value;
        r.computeTarget = computeTarget;
        r.credentialSupply = credentialSupply;
        r.modelHash = modelHash;
        emit RunOpened(runId, msg.sender, msg.value, computeTarget, designerBps, credentialSupply, challengeWindow, modelHash);
    }

    /// The designer names the run's training text, once, while the run is open: peers fetch it and
    /// refuse text whose SHA-256 is not `corpusHash`.
    function listCorpus(uint256 runId, string calldata corpusUrl, bytes32 corpusHash) external {
        Run storage r = _inState(runId, State.Open);
        if (msg.sender != r.designer) revert NotDesigner(runId);
        Listing storage l = listings[runId];
        if (l.corpusHash != bytes32(0)) revert BadParameter("corpus already listed");
        if (corpusHash == bytes32(0)) revert BadParameter("corpusHash");
        if (bytes(corpusUrl).length == 0 || bytes(corpusUrl).length > MAX_URL_BYTES) revert BadParameter("corpusUrl");
        l.corpusUrl = corpusUrl;
        l.corpusHash = corpusHash;
        emit CorpusListed(runId, corpusUrl, corpusHash);
    }

    /// Where the run's coordinator listens: wss://, or plain ws:// on this machine's loopback (a local
    /// swarm), as peers accept it; announced again when it moves, until the run is abandoned. A
    /// trained run still serves buyers.
    function announce(uint256 runId, string calldata url) external onlyRole(COORDINATOR_ROLE) {
        Run storage r = _run(runId);
        if (r.state == State.Abandoned) revert WrongState(runId, r.state);
        bytes memory b = bytes(url);
        bool tls = b.length > 6 && bytes6(b) == "wss://";
        bool loopback = b.length > 15 && bytes15(b) == "ws://127.0.0.1:";
        if (b.length > MAX_URL_BYTES || !(tls || loopback)) revert BadParameter("url");
        listings[runId].coordinator = url;
        emit CoordinatorAnnounced(runId, url);
    }

    function join(uint256 runId) external {
        Run storage r = _run(runId);
        if (r.state != State.Open && r.state != State.Training) revert WrongState(runId, r.state);
        if (joined[runId][msg.sender]) revert AlreadyJoined(runId, msg.sender);
        joined[runId][msg.sender] = true;
        r.providers++;
        emit Joined(runId, msg.sender);
    }

    function startTraining(uint256 runId) external onlyRole(COORDINATOR_ROLE) {
        Run storage r = _inState(runId, State.Open);
        if (r.providers == 0) revert BadParameter("no providers");
        r.state = State.Training;
        emit TrainingStarted(runId);
    }

    function postEpoch(uint256 runId, bytes32 root, uint256 total) external onlyRole(COORDINATOR_ROLE) returns (uint256 epoch) {
        Run storage r = _inState(runId, State.Training);
        if (root == bytes32(0) || total == 0) revert BadParameter("root");
        if (total > MAX_UNITS) revert BadParameter("total");
        // Units are cumulative: a root that shrinks the total cannot be honest.
        for (uint256 e = r.epochs; e > 0; e--) {
            Epoch storage prev = epochs[runId][e - 1];
            if (prev.vetoed) continue;
            if (total < prev.total) revert TotalDecreased(prev.total, total);
            break;
        }
        epoch = r.epochs++;
        uint64 claimableAt = uint64(block.timestamp) + r.challengeWindow;
        epochs[runId][epoch] = Epoch(root, total, claimableAt, false);
        emit EpochPosted(runId, epoch, root, total, claimableAt);
    }

    function veto(uint256 runId, uint256 epoch) external onlyRole(VETO_ROLE) {
        Epoch storage ep = _epoch(runId, epoch);
        if (ep.vetoed || block.timestamp >= ep.claimableAt) revert ChallengeWindowOver(runId, epoch);
        ep.vetoed = true;
        emit EpochVetoed(runId, epoch);
    }

    /// The latest root, once settled, ends training if it reaches the compute target.
    function finishTraining(uint256 runId) external onlyRole(COORDINATOR_ROLE) {
        Run storage r = _inState(runId, State.Training);
        if (r.epochs == 0) revert UnknownEpoch(runId, 0);
        uint256 last = r.epochs - 1;
        if (!settled(runId, last)) revert EpochNotClaimable(runId, last);
        uint256 total = epochs[runId][last].total;
        if (total < r.computeTarget) revert TargetNotReached(total, r.computeTarget);
        r.state = State.Trained;
        r.settledEpoch = last;
        uint256 designerUnits = designerShare(total, r.designerBps);
        r.stakePaid = r.stake;
        withdrawable[r.designer] += r.stake;
        tokens.activate(runId, total + designerUnits, r.credentialSupply);
        emit Trained(runId, last, total + designerUnits, designerUnits);
    }

    /// The designer or the coordinator stops a run. No root can be posted after this; where the
    /// stake goes is decided once every root posted before is past its window (stakeOutcome). If
    /// that is already so and no root survived, the designer is refunded here.
    function abandon(uint256 runId) external {
        Run storage r = _run(runId);
        if (msg.sender != r.designer && !hasRole(COORDINATOR_ROLE, msg.sender)) revert NotDesigner(runId);
        if (r.state != State.Open && r.state != State.Training) revert WrongState(runId, r.state);
        r.state = State.Abandoned;
        (StakeTo to, uint256 epoch) = stakeOutcome(runId);
        emit Abandoned(runId, to, epoch);
        if (to == StakeTo.Designer) _refund(runId, r);
    }

    // ---- claims --------------------------------------------------------------------------------

    /// Ownership for `account` from a settled root; always minted to the leaf's own account, so a
    /// proof is worth nothing to anyone else.
    /// `epoch` must be the final root (settledEpoch): an earlier root may credit an account with more
    /// than the final one did, and claims against it could mint past what others are owed.
    function claim(uint256 runId, uint256 epoch, address account, uint256 cumulative, bytes32[] calldata proof) external nonReentrant {
        Run storage r = _inState(runId, State.Trained);
        if (epoch != r.settledEpoch) revert EpochNotClaimable(runId, epoch);
        _verify(runId, epoch, account, cumulative, proof);
        uint256 already = claimed[runId][account];
        if (cumulative <= already) revert NothingToClaim();
        claimed[runId][account] = cumulative;
        emit OwnershipClaimed(runId, account, epoch, cumulative - already);
        tokens.mintOwnership(runId, account, cumulative - already);
    }

    function claimDesignerShare(uint256 runId) external nonReentrant {
        Run storage r = _inState(runId, State.Trained);
        if (r.designerPaid) revert NothingToClaim();
        uint256 amount = designerShare(epochs[runId][r.settledEpoch].total, r.designerBps);
        if (amount == 0) revert NothingToClaim();
        r.designerPaid = true;
        emit DesignerShareClaimed(runId, r.designer, amount);
        tokens.mintOwnership(runId, r.designer, amount);
    }

    /// A contributor's share of an abandoned run's stake, from the root stakeOutcome names, credited
    /// for withdrawal (anyone may send it; it is credited to the leaf's account).
    function claimStakeShare(uint256 runId, address account, uint256 cumulative, bytes32[] calldata proof) external nonReentrant {
        Run storage r = _inState(runId, State.Abandoned);
        (StakeTo to, uint256 epoch) = _decidedStake(runId, r);
        if (to != StakeTo.Contributors) revert NothingToClaim();
        _verify(runId, epoch, account, cumulative, proof);
        if (stakeClaimed[runId][account]) revert NothingToClaim();
        stakeClaimed[runId][account] = true;
        uint256 total = epochs[runId][epoch].total;
        // A leaf above its root's total, or a root whose total understates its leaves, must not pay
        // out other runs' stakes.
        if (cumulative > total) revert StakeExceeded(runId);
        // Rounds down: at most one wei per contributor stays in the contract.
        uint256 amount = (r.stake * cumulative) / total;
        r.stakePaid += amount;
        if (r.stakePaid > r.stake) revert StakeExceeded(runId);
        withdrawable[account] += amount;
        emit StakeShareClaimed(runId, account, amount);
    }

    /// The stake of an abandoned run none of whose roots survived, back to its designer (anyone may
    /// send it). Needed only when that was decided after `abandon`; otherwise abandon refunded it.
    function refundStake(uint256 runId) external nonReentrant {
        Run storage r = _inState(runId, State.Abandoned);
        (StakeTo to,) = _decidedStake(runId, r);
        if (to != StakeTo.Designer || r.stakePaid != 0) revert NothingToClaim();
        _refund(runId, r);
    }

    function withdraw() external nonReentrant {
        uint256 amount = _takeOwed(withdrawable);
        emit Withdrawn(msg.sender, amount);
        _sendToCaller(amount);
    }

    // ---- views ---------------------------------------------------------------------------------

    /// Posted, not vetoed, and past its challenge window.
    function settled(uint256 runId, uint256 epoch) public view returns (bool) {
        Epoch storage ep = epochs[runId][epoch];
        return ep.root != bytes32(0) && !ep.vetoed && block.timestamp >= ep.claimableAt;
    }

    /// Where an abandoned run's stake goes. Until every root posted before the run was abandoned is
    /// past its window (any may still be vetoed), Undecided. Then the contributors of the latest root
    /// not vetoed (`epoch`) take it pro rata, or the designer if no root survived. Undecided for a
    /// run that is not abandoned. Windows are the run's own and roots are posted in time order, so
    /// the last root's window ends last.
    function stakeOutcome(uint256 runId) public view returns (StakeTo to, uint256 epoch) {
        Run storage r = runs[runId];
        if (r.state != State.Abandoned) return (StakeTo.Undecided, 0);
        uint256 n = r.epochs;
        if (n > 0 && block.timestamp < epochs[runId][n - 1].claimableAt) return (StakeTo.Undecided, n - 1);
        for (uint256 e = n; e > 0; e--) {
            if (!epochs[runId][e - 1].vetoed) return (StakeTo.Contributors, e - 1);
        }
        return (StakeTo.Designer, 0);
    }

    /// Designer units such that they are `bps` of the whole: total·bps / (BPS − bps), rounded down.
    function designerShare(uint256 total, uint16 bps) public pure returns (uint256) {
        return (total * bps) / (BPS - bps);
    }

    // ---- internals -----------------------------------------------------------------------------

    function _run(uint256 runId) private view returns (Run storage r) {
        r = runs[runId];
        if (r.state == State.None) revert UnknownRun(runId);
    }

    function _inState(uint256 runId, State s) private view returns (Run storage r) {
        r = _run(runId);
        if (r.state != s) revert WrongState(runId, r.state);
    }

    function _epoch(uint256 runId, uint256 epoch) private view returns (Epoch storage ep) {
        ep = epochs[runId][epoch];
        if (ep.root == bytes32(0)) revert UnknownEpoch(runId, epoch);
    }

    function _decidedStake(uint256 runId, Run storage r) private view returns (StakeTo to, uint256 epoch) {
        (to, epoch) = stakeOutcome(runId);
        if (to == StakeTo.Undecided) revert StakeUndecided(runId, epochs[runId][r.epochs - 1].claimableAt);
    }

    function _refund(uint256 runId, Run storage r) private {
        r.stakePaid = r.stake;
        withdrawable[r.designer] += r.stake;
        emit StakeRefunded(runId, r.designer, r.stake);
    }

    function _verify(uint256 runId, uint256 epoch, address account, uint256 cumulative, bytes32[] calldata proof) private view {
        if (!joined[runId][account]) revert NotJoined(runId, account);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(account, cumulative))));
        if (!MerkleProof.verifyCalldata(proof, epochs[runId][epoch].root, leaf)) revert InvalidProof();
    }
}
